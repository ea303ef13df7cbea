"""The offline scenario of the local Realtime server and the simulator's state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import Report, load_state, print_report, save_state, voice_end_ms
from simulator.outcome import describe_output, describe_result
from simulator.state import base_url, new_identity
from tests.realtime_server import Scenario, ScenarioError, normalize_phrase

RULES = {
    "rules": [
        {
            "when": ["turn on the kitchen light"],
            "call": "intent__HassTurnOn",
            "arguments": {"name": "Kitchen light"},
            "say": "The kitchen light is on.",
        },
        {"when": "hello", "say": "Hi!"},
    ]
}


def test_phrases_match_whole_words_ignoring_case_and_punctuation() -> None:
    """Typed text picks the first rule whose phrase occurs in it, else the fallback."""
    scenario, voice = Scenario.parse(RULES)
    assert voice == "en-us"
    assert normalize_phrase("  Hello,   WORLD! ") == "hello world"
    assert scenario.match("Please, turn ON the kitchen light!").call == "intent__HassTurnOn"
    assert scenario.match("Hello there").say == "Hi!"
    assert scenario.match("othello") is scenario.fallback
    assert scenario.match("") is scenario.fallback


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "mapping with a `rules` list"),
        ({"rules": []}, "at least one rule"),
        ({"rules": [{"say": "x"}], "colour": 1}, "unknown keys"),
        ({"rules": ["x"]}, "rule 1: expected a mapping"),
        ({"rules": [{"when": "a", "say": "b", "extra": 1}]}, "unknown keys"),
        ({"rules": [{"when": [], "say": "b"}]}, "`when` must be"),
        ({"rules": [{"when": ["!!"], "say": "b"}]}, "`when` must be"),
        ({"rules": [{"when": "a", "say": " "}]}, "`say` must be"),
        ({"rules": [{"when": "a", "say": "b", "call": 3}]}, "`call` must be"),
        ({"rules": [{"when": "a", "say": "b", "arguments": []}]}, "`arguments` must be"),
        ({"rules": [{"when": "a", "say": "b"}], "fallback": ""}, "`fallback` must be text"),
        ({"rules": [{"when": "a", "say": "b"}], "failure": 3}, "`failure` must be text"),
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(data: object, message: str) -> None:
    """Malformed files fail at load with a message naming the problem."""
    with pytest.raises(ScenarioError, match=message):
        Scenario.parse(data)


async def test_load_synthesises_every_sentence(tmp_path: Path) -> None:
    """Loading speaks each `say`, the fallback and the greeting as 24 kHz PCM16."""
    path = tmp_path / "scenario.yaml"
    path.write_text("rules:\n  - when: hello\n    say: Hi there.\n")
    scenario = await Scenario.load(path)
    for rule in (*scenario.rules, scenario.fallback, scenario.greeting):
        assert len(rule.audio) > 24000  # more than half a second
        assert len(rule.audio) % 2 == 0


async def test_load_reports_unreadable_files(tmp_path: Path) -> None:
    """A missing file or broken YAML is a ScenarioError, not a traceback."""
    with pytest.raises(ScenarioError, match="cannot read"):
        await Scenario.load(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [")
    with pytest.raises(ScenarioError, match="cannot read"):
        await Scenario.load(broken)


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
