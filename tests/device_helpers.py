"""Shared helpers for the ESP32 endpoint tests: a loaded entry, a simulator, pairing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any
from weakref import WeakKeyDictionary

from aiohttp.test_utils import TestClient
from homeassistant.components.conversation.chat_log import async_subscribe_chat_logs
from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigEntryState,
)
from homeassistant.const import CONF_API_KEY, EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.issue_registry import EVENT_REPAIRS_ISSUE_REGISTRY_UPDATED
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.openai_realtime_voice.bridge import SpeechBridge, serving
from custom_components.openai_realtime_voice.const import (
    CONF_BASE_URL,
    CONF_CODE,
    CONF_DIALECT,
    DOMAIN,
    OTA_PATH,
)
from custom_components.openai_realtime_voice.endpoint.connection import DeviceConnection
from custom_components.openai_realtime_voice.home import DeviceHome
from custom_components.openai_realtime_voice.models import find_home
from custom_components.openai_realtime_voice.xiaozhi.hello import DeviceFeatures, DeviceHello
from realtime_server import RealtimeServer
from simulator import changes
from simulator.changes import Listener, Observable
from simulator.device import DeviceSimulator
from tests.agent_helpers import service_entry


async def setup_entry(
    hass: HomeAssistant, server: RealtimeServer, options: dict[str, Any] | None = None
) -> MockConfigEntry:
    """A loaded service entry talking to the test Realtime server."""
    entry = service_entry(
        {CONF_API_KEY: server.api_key, CONF_BASE_URL: server.url, CONF_DIALECT: "ga"},
        options,
        title="Mock Title",
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    return entry


# The simulators made for each test client, so that `release_devices` can close them.
_SIMULATORS: WeakKeyDictionary[TestClient, list[DeviceSimulator]] = WeakKeyDictionary()


def simulator(client: TestClient, **kwargs: Any) -> DeviceSimulator:
    """A device whose OTA URL points at Home Assistant's test server."""
    kwargs.setdefault("activation_retry_delay", 0.0)
    kwargs.setdefault("activation_error_delay", 0.0)
    device = DeviceSimulator(str(client.make_url(OTA_PATH)), **kwargs)
    _SIMULATORS.setdefault(client, []).append(device)
    return device


async def release_devices(hass: HomeAssistant, client: TestClient) -> None:
    """Close the client's simulators and wait until every bridge has stopped.

    For fixture teardown: a bridge still talking to the Realtime server when the test's
    server stops would log connection errors into the next assertions.
    """
    for device in _SIMULATORS.pop(client, []):
        await device.close()
    homes = [
        home
        for entry in hass.config_entries.async_loaded_entries(DOMAIN)
        for home in entry.runtime_data.devices.values()
    ]
    await wait_until(
        lambda: all(home.bridge is None for home in homes), *(home.state for home in homes)
    )


def device_home(hass: HomeAssistant, mac: str) -> DeviceHome:
    """The home of a paired device in its loaded entry."""
    found = find_home(hass, mac)
    assert found is not None, f"{mac} is not paired to a loaded entry"
    return found[1]


def bridge_at(hass: HomeAssistant, mac: str) -> SpeechBridge | None:
    """The bridge serving a device now (None while it is not connected or not paired)."""
    found = find_home(hass, mac)
    return serving(found[1]) if found is not None else None


def discovery_flow(hass: HomeAssistant, mac: str) -> dict[str, Any]:
    """The discovery flow in progress for a device."""
    flows = [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
        and flow["context"].get("unique_id") == mac
    ]
    assert len(flows) == 1, flows
    return dict(flows[0])


async def pair(hass: HomeAssistant, device: DeviceSimulator) -> None:
    """Boot check, type the spoken code into the discovered flow, activate, boot check again."""
    result = await device.check_version()
    assert result.activation is not None
    await hass.async_block_till_done()
    flow = discovery_flow(hass, device.mac)
    done = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_CODE: result.activation["code"]}
    )
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "device_paired"
    assert await device.activate(max_attempts=1)
    await hass.async_block_till_done()
    final = await device.check_version()
    assert final.activation is None
    assert final.websocket is not None
    assert "token" in final.websocket


class HassChanges:
    """Home Assistant as a source of `wait_until`: entity states, repairs, config entries,
    chat logs and flows, each through the event Home Assistant sends for it."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Observe this instance."""
        self.hass = hass

    def async_add_listener(self, update: Listener) -> Callable[[], None]:
        """Call `update` on each state change, issue registry update, config entry change,
        chat log change and reauth or discovery flow added or removed."""

        @callback
        def changed(*_: Any) -> None:
            update()

        @callback
        def event(_: Event[Any]) -> None:
            update()

        removers = [
            self.hass.bus.async_listen(EVENT_STATE_CHANGED, event),
            self.hass.bus.async_listen(EVENT_REPAIRS_ISSUE_REGISTRY_UPDATED, event),
            async_dispatcher_connect(self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, changed),
            async_subscribe_chat_logs(self.hass, changed),
            self.hass.config_entries.flow.async_subscribe_flow(changed),
        ]

        def remove() -> None:
            for remover in removers:
                remover()

        return remove


class CallWatcher(changes.Changes):
    """A source for `wait_until` where the product has no event: it is told after each call
    of the named methods of one object, which run unchanged (e.g. a limiter's `release`)."""

    def __init__(self, target: object, *methods: str) -> None:
        """Wrap `methods` of `target` (an instance attribute shadows each bound method)."""
        super().__init__()
        for name in methods:
            setattr(target, name, self._after(getattr(target, name)))

    def _after(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:
                self.notify()

        return call


async def finished(
    tasks: Iterable[asyncio.Future[Any]], what: str, timeout: float = changes.DEFAULT_TIMEOUT
) -> None:
    """Wait until every one of `tasks` is done: a task is its own event."""
    if not (pending := set(tasks)):
        return
    _, unfinished = await asyncio.wait(pending, timeout=timeout)
    if unfinished:
        raise TimeoutError(f"timed out after {timeout:g} s waiting until {what}: {unfinished}")


async def wait_until(
    predicate: Callable[[], object],
    *sources: Observable | HomeAssistant,
    timeout: float = changes.DEFAULT_TIMEOUT,
    what: str | None = None,
) -> None:
    """Wait until `predicate()` holds, re-checked whenever one of `sources` changed.

    A source is the device simulator, the Realtime test server, a device's `DeviceState`
    (the product's own change listeners), or Home Assistant (`HassChanges`).
    """
    observed = [HassChanges(s) if isinstance(s, HomeAssistant) else s for s in sources]
    await changes.wait_until(predicate, *observed, timeout=timeout, what=what)


def live(hass: HomeAssistant, mac: str) -> DeviceConnection:
    """The device's live server-side connection."""
    connection = device_home(hass, mac).state.connection
    assert isinstance(connection, DeviceConnection)
    return connection


async def connected_device(
    hass: HomeAssistant, client: TestClient, **kwargs: Any
) -> DeviceSimulator:
    """A paired device with an open audio channel whose tools have been discovered."""
    version = kwargs.pop("protocol_version", None)
    device = simulator(client, **kwargs)
    await pair(hass, device)
    if version is not None:
        device.nvs_websocket["version"] = version
    await device.open_audio_channel()
    state = device_home(hass, device.mac).state
    await wait_until(lambda: state.volume is not None, state)
    return device


async def device_client(
    hass: HomeAssistant, hass_client_no_auth: Any, realtime_server: RealtimeServer
) -> TestClient:
    """A loaded entry, HTTP bans counting failed logins, and a client without credentials."""
    assert await async_setup_component(hass, "http", {"http": {"login_attempts_threshold": 1000}})
    await setup_entry(hass, realtime_server)
    client: TestClient = await hass_client_no_auth()
    hass.config.internal_url = str(client.make_url("/"))
    return client


class NoMcpDevice(DeviceSimulator):
    """A device whose firmware has no MCP server: its hello says `features.mcp: false`."""

    def hello(self) -> DeviceHello:
        """The simulator's hello without the MCP feature."""
        return replace(super().hello(), features=DeviceFeatures(mcp=False))
