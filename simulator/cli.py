"""The user-facing simulator run: OTA check, pairing, one spoken turn, the reply as a WAV.

It prints what a user needs to check an installation (the pairing code, the transcripts, the
tools Home Assistant ran with their results, the latency) and can also write them as JSON
(`--report`). The exit status is 1 when something failed: no reply, a tool that failed, or an
entity state other than `--expect-state` asks. The device identity and the token Home Assistant
hands out once are kept in a state file, so a second run reuses the pairing; a token Home
Assistant no longer accepts (401) is reported, with an offer to pair a fresh identity.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
import contextlib
from dataclasses import asdict
import hashlib
import json
import os
from pathlib import Path
import sys
from typing import Any

import aiohttp
import numpy as np

from custom_components.openai_realtime_voice.xiaozhi import ListenMode

from .camera import Camera
from .device import DeviceSimulator
from .errors import SimulatorError
from .firmware import DeviceState
from .microphone import UPLINK_FRAME_MS, UPLINK_FRAME_SAMPLES, UPLINK_SAMPLE_RATE, read_wav_as_16k
from .report import Report, print_report
from .speech import SpeechError, synthesize, write_wav
from .state import DEFAULT_STATE, base_url, load_state, new_identity, save_state
from .watch import ChatLogWatch, HomeAssistantAuthError

__all__ = ["DEFAULT_STATE", "Report", "load_state", "main", "save_state"]

RESULT_GRACE_S = 1.0
"""How long to wait after the reply for Home Assistant's chat log events and entity states."""
VOICE_RMS = 500.0
"""RMS (PCM16) from which a frame counts as speech when finding where the speech ends."""
TRAILING_SILENCE_MS = 3000
"""Silence streamed after the speech until a reply starts (lets server VAD end the turn)."""
CODE_LIFETIME_S = 600.0
"""How long Home Assistant keeps a pairing code (`endpoint/pairing.py` CODE_LIFETIME): the run
waits that long for a person to read the code and type it."""


class StaleTokenError(SimulatorError):
    """Home Assistant refused the saved device token (401)."""


def _expected_state(text: str) -> tuple[str, str]:
    entity_id, sep, state = text.partition("=")
    if not sep or "." not in entity_id or not state:
        raise argparse.ArgumentTypeError(f"expected ENTITY_ID=STATE, got {text!r}")
    return entity_id.strip(), state.strip()


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default when it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, []):
            return action.help
        return super()._get_help_string(action)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/simulate",
        description="Behave like a xiaozhi-esp32 voice device against a running Home Assistant.",
        formatter_class=_HelpWithDefaults,
    )
    parser.add_argument(
        "--ota-url",
        default="http://127.0.0.1:8123/api/openai_realtime_voice/ota/",
        help="the OTA URL the firmware would use",
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
        help="file keeping the device identity and tokens",
    )
    parser.add_argument("--mac", help="device MAC address (default: random, kept in --state)")
    parser.add_argument(
        "--pair-timeout",
        type=float,
        default=CODE_LIFETIME_S,
        help="seconds to wait for approval (as long as the pairing code lives)",
    )
    parser.add_argument(
        "--reply-timeout", type=float, default=30.0, help="seconds to wait for a reply"
    )
    parser.add_argument(
        "--pair-only", action="store_true", help="stop after pairing and the WebSocket hello"
    )
    parser.add_argument(
        "--pair-again",
        action="store_true",
        help="when Home Assistant refuses the saved device token, pair a new identity without "
        "asking",
    )
    parser.add_argument(
        "--ha-token",
        help="a Home Assistant (admin) access token, to show its tool calls and check states "
        "(default: $HA_TOKEN, else the one scripts/develop keeps in --state)",
    )
    parser.add_argument(
        "--camera",
        nargs="?",
        const="generate",
        metavar="JPEG",
        help="be a camera board (offers self.camera.take_photo): the camera sees this JPEG "
        "file, or a generated test picture when no file is given",
    )
    parser.add_argument(
        "--expect-state",
        type=_expected_state,
        action="append",
        default=[],
        metavar="ENTITY_ID=STATE",
        help="after the reply, check that the entity has this state (repeatable)",
    )
    return parser


class Run:
    """One simulator run, printing progress through `say`."""

    def __init__(
        self,
        args: argparse.Namespace,
        say: Callable[[str], None],
        state: dict[str, Any] | None = None,
    ) -> None:
        """Keep the arguments (and a state to use instead of the file's); `run()` acts."""
        self.args = args
        self.say = say
        self.state = state if state is not None else load_state(args.state, args.mac)
        self.ha_base = base_url(args.ota_url)
        self.watch: ChatLogWatch | None = None
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
        self.camera: Camera | None = None
        if args.camera:
            self.camera = (
                Camera() if args.camera == "generate" else Camera.from_file(Path(args.camera))
            )
            self.camera.attach(self.device)

    async def run(self) -> Report:
        """Pair if needed, open the audio channel, speak and collect the reply."""
        try:
            pcm = await self._speech()
            await self._watch_home_assistant()
            await self._pair()
            await self._connect()
            if not self.args.pair_only and pcm is not None:
                await self._talk(pcm)
                await self._results()
        except StaleTokenError as err:
            self.report.stale_token = True
            self.report.error = str(err)
            self.say(f"!! {err}")
        except (SimulatorError, SpeechError, OSError, TimeoutError, aiohttp.ClientError) as err:
            self.report.error = str(err) or type(err).__name__
            self.say(f"!! {self.report.error}")
        finally:
            self._collect()
            await self.device.close()
            if self.watch is not None:
                await self.watch.close()
        return self.report

    async def _watch_home_assistant(self) -> None:
        """Follow Home Assistant's chat logs, when a token for it is known."""
        token = (
            self.args.ha_token
            or os.environ.get("HA_TOKEN")
            or self.state["home_assistant"].get(self.ha_base)
        )
        if not token:
            self._note(
                "Home Assistant's tool calls are not shown: no token for "
                f"{self.ha_base} (pass --ha-token, or start it with scripts/develop)"
            )
        else:
            watch = ChatLogWatch(self.ha_base, token)
            try:
                await watch.start()
            except (HomeAssistantAuthError, aiohttp.WSServerHandshakeError) as err:
                self._note(
                    f"Home Assistant refused the token for {self.ha_base} ({err}); its tool "
                    "calls are not shown (scripts/develop saves a new one; or pass --ha-token)"
                )
            else:
                self.watch = watch
                self.report.tool_calls = []
        if self.args.expect_state and self.watch is None:
            raise SimulatorError("--expect-state needs a Home Assistant token (--ha-token)")

    def _note(self, text: str) -> None:
        self.report.notes.append(text)
        self.say(f"    note: {text}")

    async def _results(self) -> None:
        """After the reply: Home Assistant's tool calls for this device, and entity states."""
        watch = self.watch
        if watch is None:
            return
        await asyncio.sleep(RESULT_GRACE_S)
        satellite = await watch.satellite_of(self.device.mac)
        assert self.report.tool_calls is not None
        self.report.tool_calls = [
            call.to_json() for call in watch.calls if call.agent_id == satellite
        ]
        if (latency := await watch.latency_of(self.device.mac)) is not None:
            self.report.latency_ms = round(latency, 1)
            self.report.latency_at_device = False
        states = await watch.states()
        for entity_id, expected in self.args.expect_state:
            actual = states.get(entity_id)
            self.report.states.append(
                {
                    "entity_id": entity_id,
                    "expected": expected,
                    "state": actual,
                    "ok": actual == expected,
                }
            )

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
                "    In Home Assistant open Settings > Devices & services: the discovered "
                f'"{self.device.board_name} ({self.device.mac})" card waits there; select Add '
                "and type this code."
            )
            # The firmware polls until it is approved; the run stops when the code expires.
            timeout = self.args.pair_timeout
            approved = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    approved = await self.device.activate(max_attempts=sys.maxsize)
            if not approved:
                raise SimulatorError(f"the device was not approved within {timeout:g} s")
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
        try:
            await self.device.open_audio_channel()
        except aiohttp.WSServerHandshakeError as err:
            if err.status != 401:
                raise
            raise StaleTokenError(
                "Home Assistant refused the saved device token (401): it no longer knows this "
                "pairing (was its configuration wiped, or the device removed?)"
            ) from None
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
        if not device.mic_active:  # the button press already listens (firmware order)
            await device.start_listening(ListenMode.AUTO)
        started = loop.time()
        await device.send_audio(pcm, realtime=True)
        # The end of the speech is the last voiced frame, not the end of the recording (its
        # trailing silence is already part of the turn detection's silence window).
        speech_end = started + voice_end_ms(pcm) / 1000
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
        first = next(p.arrival for p in device.playback.downlink if p.outcome == "played")
        # Shown only when Home Assistant's own figure cannot be read (see `_results`).
        self.report.latency_ms = round((first - speech_end) * 1000, 1)
        self.report.latency_at_device = True
        async with asyncio.timeout(self.args.reply_timeout + 120):
            await device.wait_for_message(_is_tts_stop)

    def _reply_started(self) -> bool:
        return any(p.outcome == "played" for p in self.device.playback.downlink)

    def _collect(self) -> None:
        """Copy what the device saw into the report and save the reply audio."""
        device, report = self.device, self.report
        report.tools = [tool.name for tool in device.mcp.tools]
        report.stt = list(device.user_lines)
        report.tts = list(device.assistant_lines)
        for message in device.messages:
            payload = message.get("payload")
            if message.get("type") != "mcp" or not isinstance(payload, dict):
                continue
            if payload.get("method") == "tools/call" and isinstance(payload.get("params"), dict):
                params = payload["params"]
                report.device_tool_calls.append(
                    {"name": params.get("name"), "arguments": params.get("arguments", {})}
                )
        if self.camera is not None:
            for upload in self.camera.uploads:
                self.say(f".. photo uploaded: HTTP {upload['status']}, {upload['body'][:80]!r}")
        hello = device.server_hello
        if hello is not None and device.playback.played_pcm:
            report.reply_seconds = round(len(device.playback.played_pcm) / 2 / hello.sample_rate, 2)
            if self.args.out is not None:
                write_wav(self.args.out, bytes(device.playback.played_pcm), hello.sample_rate)
                report.reply_wav = str(self.args.out)


def voice_end_ms(pcm: bytes, level: float = VOICE_RMS) -> int:
    """Where the last voiced uplink frame of 16 kHz PCM16 ends (ms); 0 for silence.

    A frame is voiced when its RMS reaches `level`; frames are the firmware's 60 ms.
    """
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64)
    count = len(samples) // UPLINK_FRAME_SAMPLES
    if not count:
        return 0
    frames = samples[: count * UPLINK_FRAME_SAMPLES].reshape(count, UPLINK_FRAME_SAMPLES)
    voiced = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) >= level)
    return int((voiced[-1] + 1) * UPLINK_FRAME_MS) if len(voiced) else 0


def _is_tools_list(message: dict[str, Any]) -> bool:
    payload = message.get("payload")
    return (
        message.get("type") == "mcp"
        and isinstance(payload, dict)
        and (payload.get("method") == "tools/list")
    )


def _is_tts_stop(message: dict[str, Any]) -> bool:
    return message.get("type") == "tts" and message.get("state") == "stop"


def _ask(question: str) -> bool:
    """Ask on the terminal (no when not interactive)."""
    if not sys.stdin.isatty():
        return False
    answer = input(f"{question} [Y/n] ").strip().lower()
    return answer in ("", "y", "yes")


def main(argv: Sequence[str] | None = None) -> int:
    """Run once (twice when a stale token is paired again); 0 when everything worked."""
    args = _parser().parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)  # noqa: T201 - this is a command-line tool

    report = asyncio.run(Run(args, say).run())
    if report.stale_token:
        if args.pair_again or _ask("Pair this simulator again, as a new device?"):
            state = new_identity(load_state(args.state, None))
            save_state(args.state, state)
            say(f"==> pairing again as the new device {state['mac']}")
            report = asyncio.run(Run(args, say, state).run())
        else:
            say("    run again with --pair-again to pair a new device identity")
    print_report(report, say)
    if args.report is not None:
        args.report.write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
