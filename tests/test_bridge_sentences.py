"""`SentenceSplitter`: reply text cut into the sentences the device shows."""

from __future__ import annotations

import shutil

from custom_components.openai_realtime_voice.bridge import (
    SentenceSplitter,
)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


def test_sentences_split_on_stops_and_cjk() -> None:
    """Sentences come out whole, CJK full stops need no space, the rest is flushed."""
    splitter = SentenceSplitter()
    assert splitter.push("Hello there. How") == ["Hello there."]
    assert splitter.push(" are you? 好的。下") == ["How are you?", "好的。"]
    assert splitter.push("一步") == []
    assert splitter.flush() == "下一步"
    assert splitter.flush() is None


def test_a_tail_that_ends_like_a_sentence() -> None:
    """The last sentence has no white space after its stop: the tail says it may be shown."""
    splitter = SentenceSplitter()
    assert splitter.push("Done. The lights are on") == ["Done."]
    assert not splitter.tail_ends_sentence
    assert splitter.push(".") == []
    assert splitter.tail_ends_sentence
    assert splitter.push(" And") == ["The lights are on."]
    assert not splitter.tail_ends_sentence
    assert splitter.push(" 3.") == []
    assert splitter.tail_ends_sentence
    assert splitter.push("5 more") == []  # the stop was a decimal point after all
    assert not splitter.tail_ends_sentence
    assert splitter.flush() == "And 3.5 more"
