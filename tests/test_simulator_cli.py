"""The simulator's command line: its state file, how it judges tool results, its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import load_state, save_state, voice_end_ms
from simulator.outcome import describe_output, describe_result
from simulator.report import Report, print_report
from simulator.state import base_url, new_identity


def test_simulator_state_keeps_identity_and_token(tmp_path: Path) -> None:
    """The identity is stable across runs; another --mac starts a fresh one; owner-only file."""
    path = tmp_path / "state" / "simulator.json"
    state = load_state(path, None)
    assert state["mac"].startswith("02:")
    state["websocket"]["x"] = {"token": "secret"}
    save_state(path, state)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_state(path, None) == state
    other = load_state(path, "AA:BB:CC:DD:EE:FF")
    assert other["mac"] == "aa:bb:cc:dd:ee:ff"
    assert other["websocket"] == {}
    path.write_text("not json")
    assert load_state(path, None)["websocket"] == {}


def test_simulator_state_new_identity_keeps_home_assistant_tokens(tmp_path: Path) -> None:
    """Pairing again makes a new MAC without device tokens; Home Assistant tokens stay."""
    state = load_state(tmp_path / "s.json", None)
    state["websocket"]["x"] = {"token": "device-secret"}
    state["home_assistant"]["http://127.0.0.1:8123"] = "ha-secret"
    fresh = new_identity(state)
    assert fresh["mac"] != state["mac"]
    assert fresh["websocket"] == {}
    assert fresh["home_assistant"] == {"http://127.0.0.1:8123": "ha-secret"}
    assert (
        base_url("http://127.0.0.1:8123/api/openai_realtime_voice/ota/") == "http://127.0.0.1:8123"
    )


@pytest.mark.parametrize(
    ("result", "ok", "outcome"),
    [
        (
            {"data": {"response_type": "action_done", "data": {"success": [{"id": "light.k"}]}}},
            True,
            "done: light.k",
        ),
        ({"data": {"result": "ok"}, "error": False}, True, "done"),
        (
            {"data": {"error": "No entities matched"}, "error": True},
            False,
            "failed: No entities matched",
        ),
        (
            {"data": {"response_type": "error", "speech": {"plain": {"speech": "No light"}}}},
            False,
            "failed: No light",
        ),
        (
            {"data": {"response_type": "action_done", "data": {"failed": [{"name": "Fan"}]}}},
            False,
            "failed: not done for Fan",
        ),
    ],
)
def test_tool_results_are_judged_as_a_model_reads_them(
    result: dict[str, object], ok: bool, outcome: str
) -> None:
    """An error flag, an intent error response or failed targets are failures."""
    assert describe_result(result) == (ok, outcome)


def test_tool_output_that_is_not_an_object_is_a_failure() -> None:
    """The scenario reads function_call_output strings; garbage there is a failure."""
    assert describe_output("not json") == (False, "failed: the tool output is not JSON")
    assert describe_output("[1]") == (False, "failed: the tool output is not an object")
    assert describe_output('{"data": {}, "error": false}') == (True, "done")


def test_the_end_of_speech_is_the_last_voiced_frame() -> None:
    """Trailing silence in the recording is not speech (60 ms frames at 16 kHz)."""
    loud = (8000).to_bytes(2, "little", signed=True) * 960
    quiet = bytes(2 * 960)
    assert voice_end_ms(quiet * 3) == 0
    assert voice_end_ms(quiet + loud * 2 + quiet * 5) == 180
    assert voice_end_ms(b"") == 0


def test_the_summary_says_what_failed() -> None:
    """A failed tool and an unexpected state fail the run and are named on the last line."""
    report = Report(mac="02:00:00:00:00:01", tts=["Sorry, that did not work: no light."])
    report.tool_calls = [
        {
            "name": "intent__HassTurnOn",
            "arguments": {"name": "Kitchen light"},
            "ok": False,
            "outcome": "failed: no light",
            "agent_id": "assist_satellite.x",
        }
    ]
    report.states = [{"entity_id": "light.k", "expected": "on", "state": "off", "ok": False}]
    lines: list[str] = []
    print_report(report, lines.append)
    assert report.failed
    assert 'tool: intent__HassTurnOn {"name": "Kitchen light"} -> failed: no light' in lines
    assert "state: light.k is off (expected on)" in lines
    assert lines[-1] == "!! failed: intent__HassTurnOn failed: no light; light.k is off, not on"
    assert not Report(mac="x", tool_calls=[]).failed
