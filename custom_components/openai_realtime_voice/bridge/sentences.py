"""Cut a streamed transcript into sentences for the device's `tts sentence_start` lines."""

from __future__ import annotations

import re
from typing import Final

# A sentence ends at . ! ? ; (followed by white space) or at CJK full stops, or at a newline.
_BOUNDARY: Final = re.compile(r"(?<=[.!?;\u2026])\s+|(?<=[\u3002\uff01\uff1f\uff1b])|\n+")
_TERMINATOR: Final = re.compile(r"[.!?;\u2026][\"')\]\u201d\u2019]*$")


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

    @property
    def tail_ends_sentence(self) -> bool:
        """Whether the unfinished rest ends like a sentence (no white space after it yet).

        The last sentence of a transcript has nothing after its full stop: it would only be
        complete at the end of the reply, although its audio plays long before.
        """
        return _TERMINATOR.search(self._pending.rstrip()) is not None

    def flush(self) -> str | None:
        """Return the unfinished rest, if any, and forget it."""
        rest, self._pending = self._pending.strip(), ""
        return rest or None
