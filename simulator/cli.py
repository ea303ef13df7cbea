"""The user-facing simulator run: OTA check, pairing, one spoken turn, the reply as a WAV.

It prints what a user needs to check an installation (the pairing code, the transcripts, the
device tools the server called, the latency) and can also write them as JSON (`--report`).
The device identity and the token Home Assistant hands out once are kept in a state file, so
a second run reuses the pairing.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
import contextlib
from dataclasses import asdict, dataclass, field
import hashlib
import json
import math
import os
from pathlib import Path
import random
import sys
from typing import Any
import uuid

from custom_components.openai_realtime.xiaozhi import ListenMode

from .device import (
    UPLINK_FRAME_MS,
    UPLINK_FRAME_SAMPLES,
    UPLINK_SAMPLE_RATE,
    DeviceSimulator,
    DeviceState,
    SimulatorError,
    read_wav_as_16k,
)
from .speech import SpeechError, synthesize, write_wav

DEFAULT_STATE = (
    Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    / "openai_realtime"
    / "simulator.json"
)
TRAILING_SILENCE_MS = 3000
"""Silence streamed after the speech until a reply starts (lets server VAD end the turn)."""


@dataclass(slots=True)
class Report:
    """What one run saw; printed as text and optionally written as JSON."""

    mac: str
    paired_now: bool = False
    pairing_code: str | None = None
    tools: list[str] = field(default_factory=list)
    stt: list[str] = field(default_factory=list)
    tts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: float | None = None
    reply_seconds: float = 0.0
    reply_wav: str | None = None
    error: str | None = None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/simulate",
        description="Behave like a xiaozhi-esp32 voice device against a running Home Assistant.",
    )
    parser.add_argument(
        "--ota-url",
        default="http://127.0.0.1:8123/api/openai_realtime/ota/",
        help="the OTA URL the firmware would use (default: %(default)s)",
    )
    speech = parser.add_mutually_exclusive_group()
    speech.add_argument("--wav", type=Path, help="a 16-bit WAV file to speak (any rate)")
    speech.add_argument("--say", help="a sentence to speak (synthesised with espeak-ng)")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice for --say")
    parser.add_argument("--out", type=Path, help="save the spoken reply as this WAV file")
    parser.add_argument("--report", type=Path, help="also write what was seen as JSON")
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE,
        help="file keeping the device identity and token (default: %(default)s)",
    )
    parser.add_argument("--mac", help="device MAC address (default: random, kept in --state)")
    parser.add_argument(
        "--pair-timeout", type=float, default=300.0, help="seconds to wait for approval"
    )
    parser.add_argument(
        "--reply-timeout", type=float, default=30.0, help="seconds to wait for a reply"
    )
    parser.add_argument(
        "--pair-only", action="store_true", help="stop after pairing and the WebSocket hello"
    )
    return parser


def load_state(path: Path, mac: str | None) -> dict[str, Any]:
    """The saved identity (or a new one); a different `--mac` starts a fresh identity."""
    try:
        state = json.loads(path.read_text())
    except OSError, ValueError:
        state = {}
    if not isinstance(state, dict) or (mac and state.get("mac") != mac.lower()):
        state = {}
    if not state.get("mac"):
        octets = [0x02, *(random.randrange(256) for _ in range(5))]  # locally administered
        state["mac"] = (mac or ":".join(f"{o:02x}" for o in octets)).lower()
    state.setdefault("client_id", str(uuid.uuid5(uuid.NAMESPACE_URL, state["mac"])))
    state.setdefault("websocket", {})
    return state


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state file (owner-only: it holds the device token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)


class Run:
    """One simulator run, printing progress through `say`."""

    def __init__(self, args: argparse.Namespace, say: Callable[[str], None]) -> None:
        """Keep the arguments; nothing happens until `run()`."""
        self.args = args
        self.say = say
        self.state = load_state(args.state, args.mac)
        self.ota_key = hashlib.sha256(args.ota_url.encode()).hexdigest()[:12]
        saved = self.state["websocket"].get(self.ota_key, {})
        self.device = DeviceSimulator(
            args.ota_url,
            mac=self.state["mac"],
            client_id=self.state["client_id"],
            language="en-US",
            ws_url=saved.get("url"),
            token=saved.get("token"),
        )
        self.report = Report(mac=self.device.mac)

    async def run(self) -> Report:
        """Pair if needed, open the audio channel, speak and collect the reply."""
        try:
            pcm = await self._speech()
            await self._pair()
            await self._connect()
            if not self.args.pair_only and pcm is not None:
                await self._talk(pcm)
        except (SimulatorError, SpeechError, OSError, TimeoutError) as err:
            self.report.error = str(err) or type(err).__name__
            self.say(f"!! {self.report.error}")
        finally:
            self._collect()
            await self.device.close()
        return self.report

    async def _speech(self) -> bytes | None:
        """The 16 kHz PCM to speak, from --wav or --say."""
        if self.args.wav is not None:
            return await asyncio.to_thread(read_wav_as_16k, self.args.wav)
        if self.args.say:
            return await synthesize(self.args.say, UPLINK_SAMPLE_RATE, voice=self.args.voice)
        return None

    async def _pair(self) -> None:
        """OTA check; while it asks for activation, show the code and poll until approved."""
        self.say(f"==> device {self.device.mac}: OTA check at {self.args.ota_url}")
        result = await self.device.check_version()
        if result.activation is not None:
            code = str(result.activation.get("code", ""))
            self.report.pairing_code = code
            self.say(f"==> pairing code: {code}")
            self.say(
                "    In Home Assistant open Settings > Devices & services, choose the discovered "
                "xiaozhi device and type this code."
            )
            delay = self.device.activation_retry_delay
            attempts = max(1, math.ceil(self.args.pair_timeout / delay))
            if not await self.device.activate(max_attempts=attempts):
                raise SimulatorError("the device was not approved in time")
            self.report.paired_now = True
            self.say("==> approved")
            result = await self.device.check_version()
            if result.activation is not None:
                raise SimulatorError("Home Assistant still asks for activation")
        if result.websocket is None:
            raise SimulatorError("the OTA reply has no websocket section")
        self.state["websocket"][self.ota_key] = {
            key: value
            for key, value in self.device.nvs_websocket.items()
            if key in ("url", "token")
        }
        save_state(self.args.state, self.state)

    async def _connect(self) -> None:
        """Open the WebSocket, exchange hellos and give the server time to list the tools."""
        self.say(f"==> connecting to {self.device.nvs_websocket.get('url')}")
        await self.device.open_audio_channel()
        hello = self.device.server_hello
        assert hello is not None
        self.say(f"    session {hello.session_id or '-'}, reply audio {hello.sample_rate} Hz")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.device.wait_for_message(_is_tools_list)

    async def _talk(self, pcm: bytes) -> None:
        """Press the button, speak at real time, then stream silence until the reply ends."""
        device = self.device
        loop = asyncio.get_running_loop()
        self.say(f"==> speaking {len(pcm) / 2 / UPLINK_SAMPLE_RATE:.1f} s of audio")
        await device.start_listening(ListenMode.AUTO)
        await device.send_audio(pcm, realtime=True)
        speech_end = loop.time()
        frame = bytes(UPLINK_FRAME_SAMPLES * 2)
        deadline = speech_end + self.args.reply_timeout
        sent_silence = 0
        while not self._reply_started() and loop.time() < deadline:
            if sent_silence < TRAILING_SILENCE_MS and device.mic_active:
                await device.send_audio(frame)
                sent_silence += UPLINK_FRAME_MS
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(UPLINK_FRAME_MS / 1000):
                    await device.wait_closed()
            if device.state is DeviceState.IDLE and not device.channel_open:
                raise SimulatorError("Home Assistant closed the connection")
        if not self._reply_started():
            raise SimulatorError(f"no reply within {self.args.reply_timeout:.0f} s")
        first = next(p.arrival for p in device.downlink if p.outcome == "played")
        self.report.latency_ms = round((first - speech_end) * 1000, 1)
        async with asyncio.timeout(self.args.reply_timeout + 120):
            await device.wait_for_message(_is_tts_stop)

    def _reply_started(self) -> bool:
        return any(p.outcome == "played" for p in self.device.downlink)

    def _collect(self) -> None:
        """Copy what the device saw into the report and save the reply audio."""
        device, report = self.device, self.report
        report.tools = [tool.name for tool in device.tools]
        report.stt = list(device.user_lines)
        report.tts = list(device.assistant_lines)
        for message in device.messages:
            payload = message.get("payload")
            if message.get("type") != "mcp" or not isinstance(payload, dict):
                continue
            if payload.get("method") == "tools/call" and isinstance(payload.get("params"), dict):
                params = payload["params"]
                report.tool_calls.append(
                    {"name": params.get("name"), "arguments": params.get("arguments", {})}
                )
        hello = device.server_hello
        if hello is not None and device.played_pcm:
            report.reply_seconds = round(len(device.played_pcm) / 2 / hello.sample_rate, 2)
            if self.args.out is not None:
                write_wav(self.args.out, bytes(device.played_pcm), hello.sample_rate)
                report.reply_wav = str(self.args.out)


def _is_tools_list(message: dict[str, Any]) -> bool:
    payload = message.get("payload")
    return (
        message.get("type") == "mcp"
        and isinstance(payload, dict)
        and (payload.get("method") == "tools/list")
    )


def _is_tts_stop(message: dict[str, Any]) -> bool:
    return message.get("type") == "tts" and message.get("state") == "stop"


def print_report(report: Report, say: Callable[[str], None]) -> None:
    """The human summary."""
    for line in report.stt:
        say(f"stt:  {line}")
    for line in report.tts:
        say(f"tts:  {line}")
    for call in report.tool_calls:
        say(f"tool: {call['name']} {json.dumps(call['arguments'], ensure_ascii=False)}")
    if report.latency_ms is not None:
        say(f"latency: {report.latency_ms:.0f} ms (end of speech -> first reply audio)")
    if report.reply_seconds:
        where = f", saved to {report.reply_wav}" if report.reply_wav else ""
        say(f"reply: {report.reply_seconds:.1f} s of audio{where}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run once; exit status 0 when every requested step worked."""
    args = _parser().parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)  # noqa: T201 - this is a command-line tool

    report = asyncio.run(Run(args, say).run())
    print_report(report, say)
    if args.report is not None:
        args.report.write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False))
    return 1 if report.error else 0


if __name__ == "__main__":
    sys.exit(main())
