"""Wake words in `listen detect`: the device woke up, which is no request of its own.

The firmware sends the detected wake word as `listen detect` text right before `listen start`
(`ContinueWakeWordInvoke`); some clients send a typed request the same way. A detect that is
only a wake word starts listening; a wake word in front of a request is cut off.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
import re
from typing import Final

MAX_DETECT_CHARS: Final = 300
"""Longest `listen detect` text sent to the model; the rest is cut."""

DETECT_LIMIT: Final = 5
DETECT_WINDOW: Final = 60.0
"""At most DETECT_LIMIT `listen detect` requests per DETECT_WINDOW seconds and device."""

STOCK_WAKE_WORDS: Final = (
    "你好小智",
    "ni hao xiao zhi",
    "你好小鑫",
    "hi lexin",
    "hi esp",
    "hey jarvis",
    "jarvis",
    "alexa",
    "computer",
    "hey willow",
    "sophia",
    "mycroft",
    "hey printer",
    "hi joy",
    "hey wanda",
    "小爱同学",
)
"""Wake words of the stock firmware models (ESP-SR WakeNet and the default custom word)."""

_LEADING_SEPARATORS: Final = re.compile(r"^[\W_]+")


def parse_wake_words(text: str | None) -> tuple[str, ...]:
    """The configured extra wake words: one per line or comma separated, blanks dropped."""
    if not text:
        return ()
    return tuple(word.strip() for word in re.split(r"[,\n]", text) if word.strip())


def _key(text: str) -> str:
    """What is compared: letters and digits only, lower case (`Hey, Jarvis!` -> heyjarvis)."""
    return "".join(char for char in text.casefold() if char.isalnum())


def strip_wake_word(text: str, extra: Iterable[str] = ()) -> str:
    """The request in a `detect` text without a leading wake word ("" for a wake word alone)."""
    text = text.strip()
    for word in (*extra, *STOCK_WAKE_WORDS):
        key = _key(word)
        if not key:
            continue
        position = matched = 0
        while position < len(text) and matched < len(key):
            char = text[position]
            if char.isalnum():
                if char.casefold() != key[matched]:
                    break
                matched += 1
            position += 1
        if matched != len(key):
            continue
        rest = text[position:]
        if rest and key[-1].isascii() and rest[0].isascii() and rest[0].isalnum():
            continue  # "Alexander" is no "Alexa"
        return _LEADING_SEPARATORS.sub("", rest).strip()
    return text


__all__ = ["STOCK_WAKE_WORDS", "parse_wake_words", "strip_wake_word"]


class DetectBudget:
    """The typed requests a device may still send: each is a billed response."""

    __slots__ = ("_times",)

    def __init__(self, times: deque[float]) -> None:
        """Count in `times` (when recent requests were taken; kept across connections)."""
        self._times = times

    def take(self, now: float) -> bool:
        """Take one request at `now`; False when the device has sent too many lately."""
        times = self._times
        while times and times[0] <= now - DETECT_WINDOW:
            times.popleft()
        if len(times) >= DETECT_LIMIT:
            return False
        times.append(now)
        return True
