"""The device's face: a cheap rule from a reply's first sentence to the firmware's emoji set.

The firmware shows `llm` messages' `emotion` on its face and stays `neutral` otherwise. The
rule reads words and punctuation only (no model call, no extra cost); replies in any language
without a matching cue keep the neutral face.
"""

from __future__ import annotations

import re
from typing import Final

EMOTIONS: Final = (
    "neutral",
    "happy",
    "laughing",
    "funny",
    "sad",
    "angry",
    "crying",
    "loving",
    "embarrassed",
    "surprised",
    "shocked",
    "thinking",
    "winking",
    "cool",
    "relaxed",
    "delicious",
    "kissy",
    "confident",
    "sleepy",
    "silly",
    "confused",
)
"""The emotions the stock firmware has a face for (its emoji collection)."""

# The first rule that matches wins; order goes from the most specific cue to the least.
_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("laughing", re.compile(r"\b(ha(ha)+|he(he)+|lol)\b|哈哈|😂|🤣", re.IGNORECASE)),
    (
        "sad",
        re.compile(
            r"\b(sorry|unfortunately|sadly|i can(no|')t|unable|failed|afraid)\b"
            r"|抱歉|对不起|遗憾|😢",
            re.IGNORECASE,
        ),
    ),
    ("surprised", re.compile(r"\b(wow|whoa|oh my|really\?)|哇|😮", re.IGNORECASE)),
    ("loving", re.compile(r"\b(love|sweet dreams|take care)\b|❤|😍", re.IGNORECASE)),
    ("sleepy", re.compile(r"\b(good night|sleep well)\b|晚安|😴", re.IGNORECASE)),
    (
        "happy",
        re.compile(
            r"\b(great|awesome|wonderful|glad|happy|congratulations|enjoy|nice)\b|太好了|开心|😊|😀",
            re.IGNORECASE,
        ),
    ),
    ("thinking", re.compile(r"\b(let me (check|think|see)|hmm+)\b|让我想想|🤔", re.IGNORECASE)),
    ("confused", re.compile(r"\b(not sure|didn't catch|don't understand)\b|没听清", re.IGNORECASE)),
)


def emotion_for(text: str) -> str:
    """The face for a reply, judged from its text (`neutral` when nothing stands out)."""
    for emotion, pattern in _RULES:
        if pattern.search(text):
            return emotion
    return "neutral"


__all__ = ["EMOTIONS", "emotion_for"]
