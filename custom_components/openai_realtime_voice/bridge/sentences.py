"""Cut a streamed transcript into sentences for the device's `tts sentence_start` lines."""

from __future__ import annotations

import re
from typing import Final

# A sentence ends at . ! ? ; (followed by white space) or at CJK full stops, or at a newline.
_BOUNDARY: Final = re.compile(r"(?<=[.!?;\u2026])\s+|(?<=[\u3002\uff01\uff1f\uff1b])|\n+")


class SentenceSplitter:
    """Collect transcript deltas and hand out each sentence once it is complete."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        """Start with nothing pending."""
        self._pending = ""

    def push(self, delta: str) -> list[str]:
        """Add a delta; return the sentences it completed (stripped, never empty)."""
        self._pending += delta
        parts = _BOUNDARY.split(self._pending)
        self._pending = parts.pop()
        return [part.strip() for part in parts if part.strip()]

    def flush(self) -> str | None:
        """Return the unfinished rest, if any, and forget it."""
        rest, self._pending = self._pending.strip(), ""
        return rest or None
