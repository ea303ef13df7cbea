"""The offline scenario of the test server: rules, phrases and loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime_server import Scenario, ScenarioError, normalize_phrase

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
