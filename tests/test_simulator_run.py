"""`scripts/simulate` (simulator/cli.py) as a user runs it, against an in-process Home Assistant."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp.test_utils import TestClient
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
import numpy as np
import pytest

from custom_components.openai_realtime_voice.const import CONF_CODE, OTA_PATH
from custom_components.openai_realtime_voice.endpoint.pairing import CODE_LIFETIME
from simulator.cli import Report, Run, _parser
from simulator.speech import write_wav
from tests.device_helpers import discovery_flow, release_devices

APPROVAL_DELAY_S = 61.0
"""A person reads the code, walks to Home Assistant and types it: a minute, far beyond the
10 s receive timeout the simulator's chat log watcher once had."""


def _speech(path: Path) -> Path:
    """One second of loud 16 kHz audio (the test server's VAD hears it as speech)."""
    t = np.arange(16000) / 16000
    pcm = (np.sign(np.sin(2 * np.pi * 200 * t)) * 8000).astype("<i2").tobytes()
    write_wav(path, pcm, 16000)
    return path


def _loop_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Let the test move the event loop's clock forward (every timer and timeout follows)."""
    loop = asyncio.get_running_loop()
    real = loop.time
    offset = [0.0]
    monkeypatch.setattr(loop, "time", lambda: real() + offset[0])
    return offset


@pytest.fixture
async def ws_api(hass: HomeAssistant) -> None:
    """Home Assistant's WebSocket API (chat logs, registries), which the simulator follows."""
    assert await async_setup_component(hass, "websocket_api", {})
    assert await async_setup_component(hass, "config", {})


async def _start(
    client: TestClient, tmp_path: Path, token: str, *extra: str
) -> tuple[Run, asyncio.Task[Report], asyncio.Event]:
    args = _parser().parse_args(
        [
            "--ota-url",
            str(client.make_url(OTA_PATH)),
            "--state",
            str(tmp_path / "state.json"),
            "--ha-token",
            token,
            *extra,
        ]
    )
    code_shown = asyncio.Event()

    def say(line: str) -> None:
        if line.startswith("==> pairing code:"):
            code_shown.set()

    run = Run(args, say)
    run.device.ota.activation_retry_delay = 1.0  # after the entry has reloaded
    return run, asyncio.create_task(run.run()), code_shown


async def _approve(hass: HomeAssistant, run: Run) -> None:
    await hass.async_block_till_done()
    flow = discovery_flow(hass, run.device.mac)
    done = await hass.config_entries.flow.async_configure(
        flow["flow_id"], {CONF_CODE: run.report.pairing_code}
    )
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "device_paired"


@pytest.mark.usefixtures("ws_api")
async def test_a_run_approved_after_a_minute_completes(
    hass: HomeAssistant,
    client: TestClient,
    hass_access_token: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Approval a minute after the code is shown: the run pairs, talks and reports, no error."""
    clock = _loop_clock(monkeypatch)
    run, task, code_shown = await _start(
        client, tmp_path, hass_access_token, "--wav", str(_speech(tmp_path / "me.wav"))
    )
    await code_shown.wait()
    clock[0] += APPROVAL_DELAY_S
    await asyncio.sleep(0.2)  # the loop runs every timer that is now due
    await _approve(hass, run)
    async with asyncio.timeout(60):
        report = await task
    assert report.error is None, report.error
    assert report.paired_now
    assert report.tool_calls is not None  # Home Assistant's chat logs were still followed
    assert report.tts
    # One latency figure: the run reports what the device's Response latency sensor recorded.
    sensor = next(
        state
        for state in hass.states.async_all("sensor")
        if state.entity_id.endswith("_response_latency")
        and not state.entity_id.endswith("_assist_response_latency")  # the Assist satellites'
    )
    assert report.latency_ms == round(float(sensor.state), 1)
    await release_devices(hass, client)


def test_the_simulator_waits_as_long_as_the_code_lives() -> None:
    """The default wait for approval is the pairing code's lifetime, not less."""
    assert _parser().parse_args([]).pair_timeout == CODE_LIFETIME


@pytest.mark.usefixtures("ws_api")
async def test_an_expired_wait_says_so(
    hass: HomeAssistant,
    client: TestClient,
    hass_access_token: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nobody approves within --pair-timeout: a clear error, no traceback."""
    clock = _loop_clock(monkeypatch)
    _, task, code_shown = await _start(
        client, tmp_path, hass_access_token, "--pair-only", "--pair-timeout", "30"
    )
    await code_shown.wait()
    clock[0] += 31
    async with asyncio.timeout(10):
        report = await task
    assert report.error == "the device was not approved within 30 s"
    assert not report.paired_now
