"""Fault injection: a failing Realtime service and misbehaving devices, end to end.

Each case runs a paired simulated device through real Home Assistant against the local
Realtime server, breaks something, and checks the same promises: nothing reaches HA's log
at ERROR or with a traceback, the satellite returns to idle, the device is told (`tts stop`
or an alert) or recovers on its own, and no task outlives the entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import functools
import gc
import logging
import tracemalloc
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from websockets.asyncio.server import Server, ServerConnection

from custom_components.openai_realtime_voice.bridge import (
    BridgePath,
    BridgePhase,
    RealtimeEngine,
    realtime_engine as bridge_engine,
    wake as bridge_wake,
)
from custom_components.openai_realtime_voice.bridge.uplink import UPLINK_QUEUE
from custom_components.openai_realtime_voice.endpoint import connection as device_connection
from custom_components.openai_realtime_voice.endpoint.hub import DeviceState
from custom_components.openai_realtime_voice.realtime import RealtimeClient
from custom_components.openai_realtime_voice.realtime.client import ClientOptions
from custom_components.openai_realtime_voice.xiaozhi import ListenMode
from realtime_server import RealtimeServer, ScriptedResponse, tone
from simulator.device import DeviceSimulator
from tests.bridge_helpers import (
    bridge_of,
    bridged,
    device_state,
    satellite_state,
    say,
    send_typed_detect,
)
from tests.device_helpers import finished, live, wait_until

pytestmark = pytest.mark.usefixtures("lights")

OUR_LOGGER = "custom_components.openai_realtime_voice"


@pytest.fixture(autouse=True)
def fast_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short setup timeouts and retry delays, so every failure path runs in milliseconds."""
    options = ClientOptions(open_timeout=0.5, backoff_base=0.01, backoff_max=0.02)
    monkeypatch.setattr(
        bridge_engine, "RealtimeClient", functools.partial(RealtimeClient, options=options)
    )
    monkeypatch.setattr(RealtimeEngine, "retry_delays", (0.05,))


@pytest.fixture(autouse=True)
def clean_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if anything logged an error, or our loggers logged a traceback."""
    caplog.set_level(logging.DEBUG, logger=OUR_LOGGER)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    tracebacks = [r for r in caplog.records if r.name.startswith(OUR_LOGGER) and r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


async def settles(hass: HomeAssistant, state: DeviceState) -> None:
    """Nothing is stuck: the bridge is idle or listening again, and the satellite says so."""
    done = (BridgePhase.IDLE, BridgePhase.LISTENING)
    await wait_until(
        lambda: bridge_of(hass, state) is None or bridge_of(hass, state).phase in done, state
    )
    await hass.async_block_till_done()
    expected = (
        bridge_of(hass, state).phase if bridge_of(hass, state) is not None else BridgePhase.IDLE
    )
    if bridge_of(hass, state) is None or bridge_of(hass, state).path is BridgePath.REALTIME:
        assert satellite_state(hass, state) == AssistSatelliteState(expected)
    else:
        assert satellite_state(hass, state) == AssistSatelliteState.IDLE


async def wait_tts(device: DeviceSimulator, state: str, start: int = 0) -> None:
    """Wait for a `tts` message of this state from message index `start` on."""
    async with asyncio.timeout(5):
        await device.wait_for_message(
            lambda m: m["type"] == "tts" and m["state"] == state, start=start
        )


async def speaking_reply(
    device: DeviceSimulator, server: RealtimeServer, **kwargs: Any
) -> asyncio.Event:
    """Start a long held reply and wait until the device is playing it; returns the hold."""
    hold = asyncio.Event()
    server.script(
        ScriptedResponse(text="A long answer.", audio=tone(3000), chunks=10, hold=hold, **kwargs)
    )
    await say(device)
    await wait_until(lambda: device.downlink_outcomes().get("played", 0) >= 3, device)
    return hold


async def typed_turn(device: DeviceSimulator, server: RealtimeServer, text: str = "hi") -> None:
    """One complete typed turn (a client that is no stock board): `listen detect` -> reply ->
    `tts stop`."""
    server.script(ScriptedResponse(text="Ok.", audio=tone(120)))
    start = len(device.messages)
    await send_typed_detect(device, text)
    await wait_tts(device, "stop", start)


async def close_device(hass: HomeAssistant, device: DeviceSimulator, state: DeviceState) -> None:
    """Close the device's channel and wait until its bridge has let go."""
    bridge = bridge_of(hass, state)
    await device.close()
    await wait_until(lambda: bridge_of(hass, state) is None, state)
    if bridge is not None:
        await wait_until(lambda: not bridge.tasks and bridge.client is None, bridge.device)


# --- the Realtime service fails --------------------------------------------------------------


async def test_service_drops_mid_response(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A network drop mid-reply: `tts stop`, a new session at once, the next turn works."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    start = len(device.messages)
    await speaking_reply(device, realtime_server)
    await realtime_server.drop()
    await wait_tts(device, "stop", start)
    await realtime_server.wait_connections(2)
    await settles(hass, state)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await typed_turn(device, realtime_server)
    assert bridge_of(hass, state).path is BridgePath.REALTIME
    await close_device(hass, device, state)


async def test_service_stalls_on_connect_then_recovers(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """After a drop the service accepts but never answers: the pipeline stands in, then Realtime."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.stall = True
    await realtime_server.drop()
    await wait_until(
        lambda: (
            bridge_of(hass, state) is not None
            and bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE
        ),
        state,
    )
    assert state.errors["realtime"] >= 1
    await settles(hass, state)
    realtime_server.stall = False
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME, state)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await typed_turn(device, realtime_server)
    await close_device(hass, device, state)


async def test_service_stalls_mid_response_user_aborts(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A reply that never finishes: the device's abort ends it at once and it listens again."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    start = len(device.messages)
    await speaking_reply(device, realtime_server)
    await hass.async_block_till_done()
    assert satellite_state(hass, state) == AssistSatelliteState.RESPONDING
    await device.abort()
    await wait_tts(device, "stop", start)
    await realtime_server.wait_for("response.cancel")
    await settles(hass, state)
    await typed_turn(device, realtime_server)
    await close_device(hass, device, state)


async def test_service_error_events(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A stray error event is counted and ignored; a failed response still ends in `tts stop`."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await realtime_server.session.error("server_error", "The server had an error", None)
    await wait_until(lambda: state.errors["server_error"] == 1, state)
    realtime_server.script(
        ScriptedResponse(text="Half an", audio=tone(300), status="failed"),
    )
    start = len(device.messages)
    await say(device)
    await wait_tts(device, "stop", start)
    await settles(hass, state)
    await typed_turn(device, realtime_server)
    assert bridge_of(hass, state).path is BridgePath.REALTIME
    await close_device(hass, device, state)


async def test_fatal_error_event_switches_to_the_assist_pipeline(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Out of quota mid-session: the Assist pipeline stands in until Realtime is back."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    start = len(device.messages)
    await speaking_reply(device, realtime_server)
    realtime_server.on_connect_error = {
        "type": "insufficient_quota",
        "code": "insufficient_quota",
        "message": "You exceeded your current quota.",
    }
    await realtime_server.session.error("insufficient_quota", "You exceeded your quota.", None)
    await wait_tts(device, "stop", start)
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
    await settles(hass, state)
    realtime_server.on_connect_error = None
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME, state)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await typed_turn(device, realtime_server)
    await close_device(hass, device, state)


async def test_session_expired_renews_without_the_device_noticing(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """`session_expired` then a 1001 close: a new session, the history replayed, turns go on."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await typed_turn(device, realtime_server, "remember the word banana")
    await realtime_server.session_expired()
    await realtime_server.wait_connections(2)

    def said(text: str) -> int:
        return [
            e["item"]["content"][0].get("text")
            for e in realtime_server.of_type("conversation.item.create")
        ].count(text)

    # The new connection is accepted before the client has replayed the history into it.
    await wait_until(lambda: said("remember the word banana") == 2, realtime_server)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await typed_turn(device, realtime_server)
    assert bridge_of(hass, state).path is BridgePath.REALTIME
    assert not device.alerts
    await settles(hass, state)
    await close_device(hass, device, state)


async def test_rejected_key_falls_back_and_recovers(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The key is refused after a drop: the pipeline (logged once), Realtime again once accepted."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.reject_auth = True
    await realtime_server.drop()
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
    attempts = realtime_server.connections
    await wait_until(lambda: state.errors["realtime"] >= 3, state)  # it keeps retrying, quietly
    await settles(hass, state)
    realtime_server.reject_auth = False
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME, state)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    assert realtime_server.connections == attempts + 1
    await typed_turn(device, realtime_server)
    await close_device(hass, device, state)


async def test_refused_connections_fall_back_and_recover(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The service goes away (connections refused) and comes back on the same address."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    start = len(device.messages)
    await speaking_reply(device, realtime_server)
    await realtime_server.refuse_connections()
    await wait_tts(device, "stop", start)
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.ASSIST_PIPELINE, state)
    await wait_until(lambda: state.errors["realtime"] >= 3, state)
    await settles(hass, state)
    warnings = [r for r in caplog.records if "Realtime cannot serve" in r.getMessage()]
    assert len(warnings) == 1  # one warning per outage, not per retry
    await realtime_server.start()
    await wait_until(lambda: bridge_of(hass, state).path is BridgePath.REALTIME, state)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await typed_turn(device, realtime_server)
    await close_device(hass, device, state)


# --- the device misbehaves -------------------------------------------------------------------


async def test_device_disconnects_mid_reply(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """The device vanishes while speaking: its bridge and Realtime session go with it."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await speaking_reply(device, realtime_server)
    bridge = bridge_of(hass, state)
    await close_device(hass, device, state)  # the board drops TCP: no close frame
    await wait_until(lambda: bridge.connection.closed, bridge.device)
    assert not state.connected
    await hass.async_block_till_done()
    assert satellite_state(hass, state) == AssistSatelliteState.IDLE


async def test_device_reconnects_at_once(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A second connection of the same device mid-reply replaces the first; turns go on."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    await speaking_reply(device, realtime_server)
    old = bridge_of(hass, state)
    again = DeviceSimulator(
        device.ota.url,
        mac=device.mac,
        client_id=device.client_id,
        ws_url=str(device.nvs_websocket["url"]),
        token=str(device.nvs_websocket["token"]),
    )
    try:
        await again.open_audio_channel()
        await device.wait_closed()
        await wait_until(
            lambda: bridge_of(hass, state) is not None and bridge_of(hass, state) is not old, state
        )
        await wait_until(lambda: not old.tasks and old.connection.closed, old.device)
        await wait_until(
            lambda: (
                bridge_of(hass, state).client is not None
                and bridge_of(hass, state).client.connected
            ),
            state,
        )
        await settles(hass, state)
        await typed_turn(again, realtime_server)
    finally:
        await device.close()
        await close_device(hass, again, state)


async def test_device_floods_frames(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """A burst of audio frames and garbage at wire speed, as large as the device's frame budget
    allows (a flood beyond it closes the connection: tests/test_device_budget.py): the uplink
    queue stays bounded, then a normal turn."""
    device = await bridged(hass, client)
    state = device_state(hass, device)
    bridge = bridge_of(hass, state)
    await device.start_listening(ListenMode.MANUAL)
    await device.send_audio(tone(60)[: 960 * 2])  # prime the encoder state
    frame = device.channel.sent_frames[-1]
    assert isinstance(frame, bytes)
    for _ in range(200):  # four times the uplink queue, within FRAME_BURST with what follows
        await device.send_raw_bytes(frame)
    for index in range(20):
        await device.send_raw_text("{not json" if index % 2 else '{"type": 7}')
        await device.send_raw_bytes(b"")
    await wait_until(lambda: live_packets(hass, device) >= 201, live(hass, device.mac))
    assert bridge.realtime.uplink.queued <= UPLINK_QUEUE
    assert not device.channel.closed
    await device.stop_listening()
    await wait_until(
        lambda: (
            bridge.phase is BridgePhase.IDLE or bool(realtime_server.of_type("response.create"))
        ),
        realtime_server,
        bridge.device,
    )
    await realtime_server.wait_for("input_audio_buffer.commit")
    await wait_tts(device, "stop")
    await device.start_listening(ListenMode.AUTO)
    await typed_turn(device, realtime_server)
    await settles(hass, state)
    await close_device(hass, device, state)


def live_packets(hass: HomeAssistant, device: DeviceSimulator) -> int:
    """Audio packets the server side counted for the device's live connection."""
    connection = device_state(hass, device).connection
    return connection.audio_packets_received if connection is not None else 0


# --- nothing accumulates ---------------------------------------------------------------------


async def test_no_task_outlives_the_entry(
    hass: HomeAssistant, client: TestClient, realtime_server: RealtimeServer
) -> None:
    """Faults, turns, a disconnect mid-reply and an unload leave no task of ours running."""
    await hass.async_block_till_done()
    before = set(asyncio.all_tasks())
    device = await bridged(hass, client)
    state = device_state(hass, device)
    start = len(device.messages)
    await speaking_reply(device, realtime_server)
    await realtime_server.drop()
    await wait_tts(device, "stop", start)
    await wait_until(
        lambda: (
            bridge_of(hass, state).client is not None and bridge_of(hass, state).client.connected
        ),
        state,
    )
    await typed_turn(device, realtime_server)
    await speaking_reply(device, realtime_server)
    entry = hass.config_entries.async_entries("openai_realtime_voice")[0]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    await device.close()
    await wait_until(lambda: bridge_of(hass, state) is None and not state.connected, state)
    await hass.async_block_till_done()
    current = asyncio.current_task()

    def ours() -> list[asyncio.Task[Any]]:
        """New, unfinished tasks that are not the stand-in service's own."""
        tasks = asyncio.all_tasks() - before - {current}
        return [t for t in tasks if not t.done() and not _service_task(t)]

    await finished(ours(), "the closing handshakes finished")  # within milliseconds


def _service_task(task: asyncio.Task[Any]) -> bool:
    """Whether a task belongs to the local Realtime server (a stand-in, not under test)."""
    frame = getattr(task.get_coro(), "cr_frame", None)
    owner = frame.f_locals.get("self") if frame is not None else None
    return isinstance(owner, (Server, ServerConnection))


async def test_memory_is_flat_over_a_thousand_turns(
    hass: HomeAssistant,
    client: TestClient,
    realtime_server: RealtimeServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 typed turns on one device: turns 100..1,000 add under 2 KiB each, no tasks.

    What remains is the device conversation's chat log, which Home Assistant keeps until the
    conversation has been idle for five minutes (measured: about 1.6 KiB per turn).
    """
    caplog.set_level(logging.WARNING)  # captured DEBUG records would be the biggest "leak"
    caplog.set_level(logging.WARNING, logger=OUR_LOGGER)
    # Typed turns are rate-limited per device (each is a billed response); not the point here.
    monkeypatch.setattr(bridge_wake, "DETECT_LIMIT", 10_000)
    # So is the device's frame budget (a typed turn a few milliseconds apart is no board).
    monkeypatch.setattr(device_connection, "FRAMES_PER_SECOND", 10_000.0)
    device = await bridged(hass, client)
    state = device_state(hass, device)
    realtime_server.script(*(ScriptedResponse(text="Ok.") for _ in range(1000)))

    async def turns(count: int) -> None:
        for _ in range(count):
            start = len(device.messages)
            await send_typed_detect(device, "hi")
            await wait_tts(device, "stop", start)
            if start > 100:  # the test's own records, not the integration's
                device.messages.clear()
                device.channel.sent_frames.clear()
                realtime_server.received.clear()
                realtime_server.response_params.clear()
                realtime_server.session.items.clear()

    await turns(100)
    gc.collect()
    tasks = len(asyncio.all_tasks())
    tracemalloc.start()
    try:
        first = tracemalloc.take_snapshot()
        await turns(900)
        gc.collect()
        last = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(stat.size_diff for stat in last.compare_to(first, "filename"))
    assert growth < 900 * 2048, f"{growth} bytes over 900 turns"
    assert len(asyncio.all_tasks()) <= tasks
    assert realtime_server.responses_done == 1000
    assert state.errors.total() == 0
    await close_device(hass, device, state)
