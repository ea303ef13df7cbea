"""The German and Simplified Chinese translations: complete, exact, and loaded by Home Assistant.

strings.json is the source; translations/en.json is its copy (tests/test_manifest.py). Every
other translation must have exactly the keys of strings.json, the same placeholders and the same
inline code, so that a key added to strings.json without its translations fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import string
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import translation
import pytest

INTEGRATION = Path(__file__).parent.parent / "custom_components" / "openai_realtime_voice"
LANGUAGES = ["de", "zh-Hans"]
CJK = re.compile(r"[\u4e00-\u9fff]")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"a.b.c": text} for every text of a translation tree."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def placeholders(text: str) -> set[str]:
    """The {name} fields the frontend fills in (`{{ area }}` is literal template text)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def inline_code(text: str) -> list[str]:
    """`code` spans: commands and template names stay as they are."""
    return sorted(re.findall(r"`([^`]+)`", text))


def _load(name: str) -> dict[str, str]:
    return flatten(json.loads((INTEGRATION / "translations" / f"{name}.json").read_text("utf-8")))


SOURCE = flatten(json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8")))


def test_helpers_see_missing_keys_and_placeholders() -> None:
    """The comparisons below fail on what a stale translation looks like."""
    assert flatten({"a": {"b": "x", "c": {"d": "y"}}}) == {"a.b": "x", "a.c.d": "y"}
    assert placeholders("{name} runs {version}; {{ area }}") == {"name", "version"}
    assert inline_code("Run `{command}`; `area` is") == ["area", "{command}"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_has_exactly_the_keys_of_strings_json(language: str) -> None:
    """No key missing (untranslated UI) and none left over (a removed or renamed string)."""
    translated = _load(language)
    assert sorted(set(SOURCE) - set(translated)) == [], "missing translations"
    assert sorted(set(translated) - set(SOURCE)) == [], "translations of keys that do not exist"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_keeps_placeholders_and_inline_code(language: str) -> None:
    """Every {placeholder} and `code` of the English text, no other."""
    translated = _load(language)
    for key, english in SOURCE.items():
        text = translated.get(key, "")
        assert placeholders(text) == placeholders(english), (language, key)
        assert inline_code(text) == inline_code(english), (language, key)


@pytest.mark.parametrize("language", LANGUAGES)
def test_translation_is_translated(language: str) -> None:
    """Sentences are not left in English; Chinese texts are written in Chinese characters."""
    translated = _load(language)
    for key, english in SOURCE.items():
        text = translated[key]
        assert text.strip(), (language, key)
        if len(english.split()) >= 3:
            assert text != english, (language, key, "left in English")
            if language == "zh-Hans":
                assert CJK.search(text), (language, key, "no Chinese characters")


@pytest.mark.parametrize(
    ("language", "key", "expected"),
    [
        ("de", "config.step.user.data.api_key", "API-Schlüssel"),
        ("zh-Hans", "config.step.user.data.api_key", "API 密钥"),
        ("de", "entity.number.volume.name", "Lautstärke"),
        ("zh-Hans", "entity.number.volume.name", "音量"),
    ],
)
async def test_home_assistant_loads_the_translation(
    hass: HomeAssistant, language: str, key: str, expected: str
) -> None:
    """Home Assistant's translation loader finds the file under the language's name."""
    category = key.split(".", 1)[0]
    strings = await translation.async_get_translations(
        hass, language, category, ["openai_realtime_voice"]
    )
    assert strings[f"component.openai_realtime_voice.{key}"] == expected


# --- ICU message syntax -------------------------------------------------------------------------
# The frontend formats every translated text as an ICU message (formatjs' intl-messageformat):
# `{name}` is an argument, and a literal brace must be quoted with apostrophes (`'{'`, `''` is
# one apostrophe). Anything else there shows "Translation error: MALFORMED_ARGUMENT" instead of
# the text. Arguments with a type (`{n, plural, ...}`) are not used by this integration.


class IcuError(ValueError):
    """The text is no valid ICU message; the message names formatjs' error kind."""


def icu_render(text: str, values: dict[str, str] | None = None) -> str:
    """Format `text` as the frontend does (arguments from `values`, else kept as `{name}`)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "'":
            following = text[i + 1 : i + 2]
            if following == "'":
                out.append("'")
                i += 2
            elif following in ("{", "}"):
                end = text.find("'", i + 1)
                while end != -1 and text[end + 1 : end + 2] == "'":  # '' inside a quote
                    end = text.find("'", end + 2)
                quoted = text[i + 1 : end if end != -1 else len(text)]
                out.append(quoted.replace("''", "'"))
                i = len(text) if end == -1 else end + 1
            else:
                out.append("'")
                i += 1
        elif char == "{":
            end = text.find("}", i)
            name = text[i + 1 : end if end != -1 else len(text)].strip()
            if end == -1:
                raise IcuError(f"EXPECT_ARGUMENT_CLOSING_BRACE at {i}")
            if not name or not re.fullmatch(r"[^\s{}',#]+", name):
                raise IcuError(f"MALFORMED_ARGUMENT at {i}: {text[i : end + 1]!r}")
            out.append((values or {}).get(name, "{" + name + "}"))
            i = end + 1
        elif char == "}":
            raise IcuError(f"UNMATCHED_CLOSING_BRACE at {i}")
        else:
            out.append(char)
            i += 1
    return "".join(out)


def test_icu_rules_catch_what_the_frontend_rejects() -> None:
    """The checker fails where the frontend showed a translation error, and renders quotes."""
    with pytest.raises(IcuError, match="MALFORMED_ARGUMENT"):
        icu_render("e.g. You are in the {{ area }}.")
    with pytest.raises(IcuError, match="UNMATCHED_CLOSING_BRACE"):
        icu_render("a } b")
    assert icu_render("You are in the '{{ area }}'.") == "You are in the {{ area }}."
    assert icu_render("the device's {name}", {"name": "Box"}) == "the device's Box"
    assert icu_render("It''s '{x}'") == "It's {x}"


@pytest.mark.parametrize("name", ["strings", "en", *LANGUAGES])
def test_every_text_is_a_valid_icu_message(name: str) -> None:
    """No translated text breaks the frontend's message format."""
    texts = SOURCE if name == "strings" else _load(name)
    problems = {}
    for key, text in texts.items():
        try:
            icu_render(text)
        except IcuError as err:
            problems[key] = str(err)
    assert problems == {}


@pytest.mark.parametrize("name", ["en", *LANGUAGES])
def test_the_template_example_is_shown_as_written(name: str) -> None:
    """The profile form's helper shows the `{{ area }}` template literally."""
    key = "config_subentries.device.step.reconfigure.data_description.extra_instructions"
    assert "{{ area }}" in icu_render(_load(name)[key])
