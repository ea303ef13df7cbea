"""Token usage totals (responses and input transcription) and a cost estimate of both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "DEFAULT_PRICES",
    "TRANSCRIPTION_PRICES",
    "ModelPrices",
    "TranscriptionPrices",
    "Usage",
    "prices_for",
]


@dataclass(frozen=True, kw_only=True)
class ModelPrices:
    """USD per one million tokens."""

    text_in: float
    text_cached: float
    text_out: float
    audio_in: float
    audio_cached: float
    audio_out: float
    image_in: float = 0.0
    image_cached: float = 0.0


_FULL: Final = ModelPrices(
    text_in=4.00,
    text_cached=0.40,
    text_out=16.00,
    audio_in=32.00,
    audio_cached=0.40,
    audio_out=64.00,
    image_in=5.00,
    image_cached=0.50,
)
_MINI: Final = ModelPrices(
    text_in=0.60,
    text_cached=0.06,
    text_out=2.40,
    audio_in=10.00,
    audio_cached=0.30,
    audio_out=20.00,
    image_in=0.80,
    image_cached=0.08,
)
_V2: Final = ModelPrices(
    text_in=4.00,
    text_cached=0.40,
    text_out=24.00,
    audio_in=32.00,
    audio_cached=0.40,
    audio_out=64.00,
    image_in=5.00,
    image_cached=0.50,
)

# Longest matching prefix wins; dated snapshots share their family's price.
DEFAULT_PRICES: Final[Mapping[str, ModelPrices]] = {
    "gpt-realtime": _FULL,
    "gpt-realtime-1.5": _FULL,
    "gpt-realtime-2": _V2,
    "gpt-realtime-2.1": _V2,
    "gpt-realtime-mini": _MINI,
    "gpt-realtime-2.1-mini": _MINI,
}


@dataclass(frozen=True, kw_only=True)
class TranscriptionPrices:
    """USD per one million tokens of an input transcription model, or per minute of audio."""

    audio_in: float = 0.0
    text_in: float = 0.0
    text_out: float = 0.0
    per_minute: float = 0.0


# OpenAI's list prices of the transcription models the options offer (the models' pages).
TRANSCRIPTION_PRICES: Final[Mapping[str, TranscriptionPrices]] = {
    "gpt-4o-transcribe": TranscriptionPrices(audio_in=6.00, text_in=2.50, text_out=10.00),
    "gpt-4o-mini-transcribe": TranscriptionPrices(audio_in=3.00, text_in=1.25, text_out=5.00),
    "whisper-1": TranscriptionPrices(per_minute=0.006),
}


def prices_for(model: str) -> ModelPrices | None:
    """Find the list prices of a model by longest prefix; None when unknown."""
    matches = [name for name in DEFAULT_PRICES if model == name or model.startswith(f"{name}-")]
    if not matches:
        return None
    return DEFAULT_PRICES[max(matches, key=len)]


def _int(mapping: Any, key: str) -> int:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(kw_only=True)
class Usage:
    """Running token totals of a client (cached tokens are a subset of input tokens)."""

    responses: int = 0
    text_in: int = 0
    text_cached: int = 0
    audio_in: int = 0
    audio_cached: int = 0
    text_out: int = 0
    audio_out: int = 0
    image_in: int = 0
    image_cached: int = 0
    # Input transcription, billed apart at the transcription model's prices (not priced here).
    transcription_audio_in: int = 0
    transcription_text_in: int = 0
    transcription_text_out: int = 0
    transcription_ms: int = 0  # audio transcribed by a model billed per minute (whisper-1)

    def add(self, usage: Any) -> None:
        """Add one `response.done` `usage` object; malformed parts count as zero."""
        if not isinstance(usage, dict):
            return
        self.responses += 1
        details_in = usage.get("input_token_details")
        cached = details_in.get("cached_tokens_details") if isinstance(details_in, dict) else None
        details_out = usage.get("output_token_details")
        self.text_in += _int(details_in, "text_tokens")
        self.audio_in += _int(details_in, "audio_tokens")
        self.text_cached += _int(cached, "text_tokens")
        self.audio_cached += _int(cached, "audio_tokens")
        self.image_in += _int(details_in, "image_tokens")
        self.image_cached += _int(cached, "image_tokens")
        self.text_out += _int(details_out, "text_tokens")
        self.audio_out += _int(details_out, "audio_tokens")

    def add_transcription(self, usage: Any) -> bool:
        """Add one transcription `usage`: tokens, or seconds of audio; False when malformed.

        SDK ConversationItemInputAudioTranscriptionCompletedEvent.usage: `{type: "tokens",
        input_tokens, output_tokens, input_token_details: {text_tokens, audio_tokens}}` or
        `{type: "duration", seconds}`.
        """
        if not isinstance(usage, dict):
            return False
        if usage.get("type") == "duration":
            seconds = usage.get("seconds")
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
                return False
            self.transcription_ms += round(seconds * 1000)
            return True
        if not isinstance(usage.get("input_tokens"), int):
            return False
        details = usage.get("input_token_details")
        if isinstance(details, dict):
            self.transcription_audio_in += _int(details, "audio_tokens")
            self.transcription_text_in += _int(details, "text_tokens")
        else:  # the details are optional: the input is the audio
            self.transcription_audio_in += _int(usage, "input_tokens")
        self.transcription_text_out += _int(usage, "output_tokens")
        return True

    def transcription_cost(self, prices: TranscriptionPrices) -> float:
        """Estimated USD of the input transcription counted here."""
        tokens = (
            self.transcription_audio_in * prices.audio_in
            + self.transcription_text_in * prices.text_in
            + self.transcription_text_out * prices.text_out
        )
        return tokens / 1_000_000 + self.transcription_ms / 60_000 * prices.per_minute

    def cost(self, prices: ModelPrices) -> float:
        """Estimated USD: uncached input at the input rate, cached at the cached rate."""
        total = (
            max(self.text_in - self.text_cached, 0) * prices.text_in
            + self.text_cached * prices.text_cached
            + max(self.audio_in - self.audio_cached, 0) * prices.audio_in
            + self.audio_cached * prices.audio_cached
            + max(self.image_in - self.image_cached, 0) * prices.image_in
            + self.image_cached * prices.image_cached
            + self.text_out * prices.text_out
            + self.audio_out * prices.audio_out
        )
        return total / 1_000_000
