"""Scripted model responses: what the model answers, and one response in progress.

A `ScriptedResponse` is what the model answers (text, audio, tool calls, how it ends);
`responses.run_response` plays it on a connection, tracked as a `Running` response.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScriptedCall:
    """A function call the scripted model makes."""

    name: str
    arguments: str = "{}"
    call_id: str | None = None
    status: str = "completed"


@dataclass
class ScriptedResponse:
    """One model response: message text/audio, tool calls, and how it ends.

    `hold` pauses the response after its deltas until the event is set or the client cancels;
    `late_deltas` audio deltas follow a cancellation before `response.done`.
    """

    text: str = ""
    audio: bytes = b""
    calls: list[ScriptedCall] = field(default_factory=list)
    chunks: int = 2
    hold: asyncio.Event | None = None
    late_deltas: int = 0
    status: str = "completed"
    error: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None


@dataclass(eq=False)
class Running:
    """A response in progress, in the default conversation or out of band (`conversation: none`)."""

    id: str
    out_of_band: bool
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    task: asyncio.Task[None] | None = None


def default_usage() -> dict[str, Any]:
    """A response.done usage block shaped like the spec example."""
    return {
        "total_tokens": 253,
        "input_tokens": 132,
        "output_tokens": 121,
        "input_token_details": {
            "text_tokens": 119,
            "audio_tokens": 13,
            "image_tokens": 0,
            "cached_tokens": 64,
            "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
    }


# A response that failed before the model ran bills nothing.
ZERO_USAGE = {
    "total_tokens": 0,
    "input_tokens": 0,
    "output_tokens": 0,
    "input_token_details": {
        "text_tokens": 0,
        "audio_tokens": 0,
        "image_tokens": 0,
        "cached_tokens": 0,
    },
    "output_token_details": {"text_tokens": 0, "audio_tokens": 0},
}
