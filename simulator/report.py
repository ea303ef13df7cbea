"""What one simulator run saw (`Report`), and its human summary (`print_report`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import json
from typing import Any

LATENCY_MEANING = (
    "the device's Response latency: end of speech -> first reply audio, VAD silence included"
)
DEVICE_LATENCY_MEANING = (
    "measured at the simulated device, end of speech -> first reply audio; without a Home "
    "Assistant token the device's Response latency sensor cannot be read"
)


@dataclass(slots=True)
class Report:
    """What one run saw; printed as text and optionally written as JSON."""

    mac: str
    paired_now: bool = False
    pairing_code: str | None = None
    tools: list[str] = field(default_factory=list)
    stt: list[str] = field(default_factory=list)
    tts: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] | None = None
    """Every tool Home Assistant ran for this device, with its outcome (None: not visible)."""
    device_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """The device's own MCP tools Home Assistant called (what the device itself sees)."""
    states: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: float | None = None
    """The device's Response latency sensor after the turn; without a Home Assistant token the
    same span as the simulated device measures it."""
    latency_at_device: bool = False
    reply_seconds: float = 0.0
    reply_wav: str | None = None
    error: str | None = None
    stale_token: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether the run failed: an error, a failed tool, or an unexpected state."""
        return bool(
            self.error
            or any(not call["ok"] for call in self.tool_calls or [])
            or any(not check["ok"] for check in self.states)
        )


def print_report(report: Report, say: Callable[[str], None]) -> None:
    """The human summary."""
    for line in report.stt:
        say(f"stt:  {line}")
    for line in report.tts:
        say(f"tts:  {line}")
    if report.tool_calls is not None:
        for call in report.tool_calls:
            arguments = json.dumps(call["arguments"], ensure_ascii=False)
            say(f"tool: {call['name']} {arguments} -> {call['outcome']}")
    else:
        for call in report.device_tool_calls:
            arguments = json.dumps(call["arguments"], ensure_ascii=False)
            say(f"device tool: {call['name']} {arguments}")
    for check in report.states:
        verdict = "as expected" if check["ok"] else f"expected {check['expected']}"
        say(f"state: {check['entity_id']} is {check['state']} ({verdict})")
    if report.latency_ms is not None:
        meaning = DEVICE_LATENCY_MEANING if report.latency_at_device else LATENCY_MEANING
        say(f"latency: {report.latency_ms:.0f} ms ({meaning})")
    if report.reply_seconds:
        where = f", saved to {report.reply_wav}" if report.reply_wav else ""
        say(f"reply: {report.reply_seconds:.1f} s of audio{where}")
    if report.failed and not report.error:
        say("!! failed: " + "; ".join(_failures(report)))


def _failures(report: Report) -> list[str]:
    failures = [
        f"{call['name']} {call['outcome']}" for call in report.tool_calls or [] if not call["ok"]
    ]
    failures += [
        f"{c['entity_id']} is {c['state']}, not {c['expected']}"
        for c in report.states
        if not c["ok"]
    ]
    return failures
