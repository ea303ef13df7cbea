"""Speech to text and text to speech on their own: one short Realtime session per request.

This is what the speech-to-text and text-to-speech entities do when no shared turn is there
(`shared_turn`): Realtime transcription of a pipeline's speech with the speech-to-text's model,
and the first agent's model reading a text aloud in the voice the pipeline chose. Also what a
shared turn uses the same way: the pipeline's speech into a session, its input transcript.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import replace
import struct
import time
from typing import Any, Final

import numpy as np

from .audio.resampler import Resampler
from .const import CONF_TRANSCRIPTION_MODEL, RECOMMENDED_TRANSCRIPTION_MODEL, TRANSCRIPTION_OFF
from .realtime import (
    Closed,
    InputCommitted,
    InputTranscript,
    Modality,
    RealtimeClient,
    RealtimeEndpoint,
    RealtimeError,
    SessionConfig,
    Transcription,
)
from .settings import session_config, transcription_language
from .usage import EntryUsage, Pricing

PIPELINE_RATE: Final = 16000
"""Assist pipelines hand speech-to-text 16 kHz PCM16 mono."""
MODEL_RATE: Final = 24000
"""What the Realtime service takes and speaks: PCM16 mono 24 kHz."""
TRANSCRIPT_TIMEOUT: Final = 15.0
"""Seconds the input transcript may take after the commit."""
SPEECH_RANGE: Final = 0.1
"""Audio within 20 dB of the loudest of a stream counts as speech (for its end)."""
SILENCE_LEVEL: Final = 64.0
"""An RMS level (of 32768) below which a chunk is silence, whatever the stream's loudest."""

LANGUAGES: Final = [
    *("af", "ar", "az", "be", "bg", "bs", "ca", "cs", "cy", "da", "de", "el", "en", "es"),
    *("et", "fa", "fi", "fr", "gl", "he", "hi", "hr", "hu", "hy", "id", "is", "it", "ja"),
    *("kk", "kn", "ko", "lt", "lv", "mi", "mk", "mr", "ms", "ne", "nl", "no", "pl", "pt"),
    *("ro", "ru", "sk", "sl", "sr", "sv", "sw", "ta", "th", "tl", "tr", "uk", "ur", "vi"),
    *("zh", "de-DE", "en-GB", "en-US", "es-ES", "fr-FR", "it-IT", "nl-NL", "pt-BR", "pt-PT"),
    *("zh-CN", "zh-Hans", "zh-TW"),
]
"""Languages the Realtime models hear and speak (Whisper's list), bare and common regions."""

READ_ALOUD: Final = (
    "You are a voice. Read the user's message aloud exactly as it is written, word for word, "
    "in its own language. Add nothing, leave nothing out, answer nothing."
)
"""The instructions of a session that only speaks a given text."""


def transcription(options: Mapping[str, Any], language: str | None) -> Transcription:
    """How speech-to-text transcribes: its subentry's model (the recommended one if it is off)."""
    model = options.get(CONF_TRANSCRIPTION_MODEL)
    if not model or model == TRANSCRIPTION_OFF:
        model = RECOMMENDED_TRANSCRIPTION_MODEL
    return Transcription(model=model, language=transcription_language(language))


class SpeechEnd:
    """When the user's speech in a pipeline's stream ended: the arrival of its last loud audio.

    A stream ends once a voice detection (Home Assistant's or the satellite's) has heard a
    stretch of silence after the speech; a turn's latency counts that silence in, as a xiaozhi
    device's does (`bridge/latency.py`). Loud is within `SPEECH_RANGE` of the loudest chunk so
    far (and above digital silence): the room's noise after the speech is not.
    """

    __slots__ = ("at", "peak")

    def __init__(self) -> None:
        """No speech yet."""
        self.peak = 0.0
        self.at: float | None = None

    def heard(self, pcm: bytes, arrived: float) -> None:
        """A chunk of 16-bit PCM arrived at `arrived` (monotonic seconds)."""
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)
        if not samples.size:
            return
        level = float(np.sqrt(np.mean(samples * samples)))
        self.peak = max(self.peak, level)
        if level >= max(self.peak * SPEECH_RANGE, SILENCE_LEVEL):
            self.at = arrived


async def async_send_speech(client: RealtimeClient, stream: AsyncIterable[bytes]) -> float:
    """Send the pipeline's 16 kHz speech to the session at 24 kHz; when the speech ended
    (monotonic seconds: its last loud audio, else the end of the stream)."""
    resampler = Resampler(PIPELINE_RATE, MODEL_RATE)
    end = SpeechEnd()
    async for chunk in stream:
        end.heard(chunk, time.monotonic())
        if pcm := resampler.process(chunk):
            await client.append_audio(pcm)
    if pcm := resampler.flush():
        await client.append_audio(pcm)
    return end.at if end.at is not None else time.monotonic()


async def async_transcript(
    client: RealtimeClient,
    usage: EntryUsage | None,
    pricing: Pricing,
    committed: Callable[[str], None] = lambda _item_id: None,
) -> tuple[str, str]:
    """The item id and transcript of the next committed user audio (`committed` is told the
    item id as soon as the audio is an item); its usage is recorded at `pricing`."""
    item_id: str | None = None
    async for event in client.events():
        if isinstance(event, InputCommitted) and item_id is None:
            item_id = event.item_id
            committed(item_id)
        elif isinstance(event, InputTranscript) and event.item_id == item_id:
            if usage is not None:
                usage.record_transcription(event.usage, pricing)
            return item_id, event.text
        elif isinstance(event, Closed):
            raise event.error or RealtimeError("the session closed before the transcript")
    raise RealtimeError("the session closed before the transcript")


def wav_header(rate: int = MODEL_RATE) -> bytes:
    """A WAV header for a PCM16 mono stream of unknown length (sizes 0, as streams have)."""
    return b"RIFF" + struct.pack(
        "<I4s4sIHHIIHH4sI", 0, b"WAVE", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16, b"data", 0
    )


async def async_transcribe(
    endpoint: RealtimeEndpoint,
    options: Mapping[str, Any],
    language: str | None,
    stream: AsyncIterable[bytes],
    usage: EntryUsage | None,
    *,
    pricing: Pricing,
) -> str:
    """Transcribe a pipeline's 16 kHz speech with the transcription model of `options`.

    The session only transcribes: the audio is committed and no response is asked for; the
    transcription is recorded in `usage` at `pricing`.
    """
    config = SessionConfig(
        output_modality=Modality.TEXT,
        turn_detection=None,
        transcription=transcription(options, language),
    )
    client = RealtimeClient(endpoint, config)
    try:
        await client.connect()
        heard = asyncio.ensure_future(async_transcript(client, usage, pricing))
        try:
            await async_send_speech(client, stream)
            await client.commit_audio()
            async with asyncio.timeout(TRANSCRIPT_TIMEOUT):
                _, text = await heard
        finally:
            heard.cancel()
    finally:
        await client.close()
    return text


async def async_read_aloud(
    endpoint: RealtimeEndpoint,
    options: Mapping[str, Any],
    text: str,
    usage: EntryUsage | None,
    *,
    pricing: Pricing,
) -> AsyncIterator[bytes]:
    """The model of `options` reading `text` aloud in its voice: PCM16 24 kHz as it comes,
    the response recorded in `usage` at `pricing`."""
    config = replace(
        session_config(options, instructions=READ_ALOUD, modality=Modality.AUDIO),
        turn_detection=None,
        transcription=None,
        tools=(),
    )
    client = RealtimeClient(endpoint, config)
    try:
        await client.connect()
        await client.add_user_text(text)
        response = await client.create_response()
        async for pcm in response.audio():
            yield pcm
        if usage is not None:
            usage.record(response.usage, pricing)
        if response.status != "completed":
            raise response.error or RealtimeError(f"the reading ended {response.status}")
    finally:
        await client.close()


__all__ = [
    "LANGUAGES",
    "MODEL_RATE",
    "TRANSCRIPT_TIMEOUT",
    "async_read_aloud",
    "async_send_speech",
    "async_transcribe",
    "async_transcript",
    "transcription",
    "wav_header",
]
