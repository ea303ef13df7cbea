"""One model response: its typed deltas, streamed as an async iterator, and its final state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from .errors import FATAL_ERROR_CODES, RealtimeError, RealtimeRequestError, error_for_code

__all__ = [
    "BYTES_PER_MS",
    "AudioDelta",
    "FunctionCall",
    "RealtimeResponse",
    "ResponseEvent",
    "TextDelta",
    "TranscriptDelta",
    "ends_session",
    "failure",
]

BYTES_PER_MS: Final = 48  # PCM16 mono 24 kHz
_END: Final = object()


# -- a response's deltas ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of text output (text modality)."""

    text: str
    item_id: str


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of the transcript of the audio output."""

    text: str
    item_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """PCM16 mono 24 kHz audio output."""

    pcm: bytes
    item_id: str

    @property
    def duration_ms(self) -> float:
        """Length of this chunk in milliseconds (48 bytes per ms)."""
        return len(self.pcm) / BYTES_PER_MS


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A completed function call of the model; `arguments` is a JSON string."""

    call_id: str
    name: str
    arguments: str
    item_id: str


type ResponseEvent = TextDelta | TranscriptDelta | AudioDelta | FunctionCall


# -- the response ----------------------------------------------------------------------------


class RealtimeResponse:
    """A response's deltas (iterate once) plus status, usage and completed function calls."""

    def __init__(
        self,
        response_id: str,
        metadata: dict[str, Any] | None = None,
        *,
        out_of_band: bool = False,
    ) -> None:
        """Create an in-progress response; the client feeds it."""
        self.id = response_id
        self.metadata = metadata
        self.out_of_band = out_of_band
        self.status: str | None = None
        self.status_details: dict[str, Any] | None = None
        self.error: RealtimeError | None = None
        self.usage: dict[str, Any] | None = None
        self.function_calls: list[FunctionCall] = []
        self.text = ""
        self.transcript = ""
        self.cancelled = False
        self.audio_bytes: dict[str, int] = {}
        self.audio_item_id: str | None = None
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._done = asyncio.Event()

    def __repr__(self) -> str:
        """Summarise without payloads."""
        return f"<RealtimeResponse {self.id} status={self.status}>"

    @property
    def done(self) -> bool:
        """Whether the response has ended."""
        return self._done.is_set()

    @property
    def audio_ms(self) -> int:
        """Milliseconds of audio received for the current audio item."""
        if self.audio_item_id is None:
            return 0
        return self.audio_bytes.get(self.audio_item_id, 0) // BYTES_PER_MS

    def push(self, event: ResponseEvent) -> None:
        """Record and queue a delta (dropped after a local cancel)."""
        if self.cancelled or self.done:
            return
        match event:
            case AudioDelta(pcm=pcm, item_id=item_id):
                self.audio_item_id = item_id
                self.audio_bytes[item_id] = self.audio_bytes.get(item_id, 0) + len(pcm)
            case TextDelta(text=text):
                self.text += text
            case TranscriptDelta(text=text):
                self.transcript += text
            case FunctionCall():
                self.function_calls.append(event)
        self._queue.put_nowait(event)

    def finish(
        self,
        status: str,
        details: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> None:
        """Mark the response ended and close its stream."""
        if self.done:
            return
        self.status = status
        self.status_details = details
        self.usage = usage
        if status == "failed":
            self.error = failure(details)
        self._done.set()
        self._queue.put_nowait(_END)

    @property
    def reply(self) -> str:
        """What the response said: its text, or the transcript of its audio."""
        return self.text or self.transcript

    async def wait(self) -> RealtimeResponse:
        """Wait until the response has ended; return it."""
        await self._done.wait()
        return self

    async def __aiter__(self) -> AsyncIterator[ResponseEvent]:
        """Yield text, transcript, audio and function-call events until the response ends."""
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)
                return
            yield item  # type: ignore[misc]

    async def audio(self) -> AsyncIterator[bytes]:
        """Yield only the PCM audio chunks (consumes the stream)."""
        async for event in self:
            if isinstance(event, AudioDelta):
                yield event.pcm

    async def text_stream(self) -> AsyncIterator[str]:
        """Yield text deltas, or transcript deltas for audio output (consumes the stream)."""
        async for event in self:
            if isinstance(event, (TextDelta, TranscriptDelta)):
                yield event.text


def failure(details: dict[str, Any] | None) -> RealtimeError:
    """Why a response failed (`status_details.error`), mapped like an `error` event's code."""
    error = (details or {}).get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    code = code if isinstance(code, str) else None
    message = str(error.get("message") or error.get("type") or "the response failed")
    mapped = error_for_code(code, message)
    return mapped or RealtimeRequestError(f"{code or 'failed'}: {message}", code=code)


def ends_session(details: dict[str, Any] | None) -> bool:
    """Whether a failed response's cause ends the session, as the same error event would."""
    error = (details or {}).get("error")
    return isinstance(error, dict) and error.get("code") in FATAL_ERROR_CODES
