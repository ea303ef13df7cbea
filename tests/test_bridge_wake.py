"""Wake words in `listen detect` text (pure functions)."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.bridge.wake import parse_wake_words, strip_wake_word


@pytest.mark.parametrize(
    ("text", "request_text"),
    [
        ("你好小智", ""),
        ("你好小智。", ""),
        ("Hey Jarvis", ""),
        ("hey, JARVIS!", ""),
        ("Alexa, lights on", "lights on"),
        ("你好小智\uff0c现在几点", "现在几点"),
        ("Alexander the Great", "Alexander the Great"),  # a word that merely starts alike
        ("what time is it", "what time is it"),
        ("  jarvis  ", ""),
        ("hey", "hey"),  # part of a wake word is a request
    ],
)
def test_strip_wake_word(text: str, request_text: str) -> None:
    """Stock wake words are cut from the front; everything else is kept as the request."""
    assert strip_wake_word(text) == request_text


def test_configured_wake_words() -> None:
    """Configured words (comma or line separated) count too; blank or symbol-only ones are
    ignored."""
    words = parse_wake_words("Hey Nova,\n 你好小白 , ,!!!")
    assert words == ("Hey Nova", "你好小白", "!!!")
    assert strip_wake_word("hey nova", words) == ""
    assert strip_wake_word("你好小白\uff0c开灯", words) == "开灯"
    assert strip_wake_word("!!! hello", words) == "!!! hello"
    assert parse_wake_words(None) == ()
    assert parse_wake_words("") == ()
