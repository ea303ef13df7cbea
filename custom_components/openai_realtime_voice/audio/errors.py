"""Typed errors of the audio core; callers never see anything else from bad input."""

from __future__ import annotations


class AudioError(Exception):
    """Base class of every error raised by the audio package."""


class AudioFormatError(AudioError, ValueError):
    """A rate, frame duration or PCM buffer that the audio core does not accept."""


class OpusCodecError(AudioError):
    """libopus rejected an operation that valid input cannot trigger (e.g. an encoder failure)."""


class OpusNotFoundError(AudioError):
    """libopus could not be loaded; `platform_hint` names the command that installs it."""

    def __init__(self, message: str, platform_hint: str, tried: tuple[str, ...] = ()) -> None:
        """Keep the install hint and the candidates tried, for a repair issue and the log."""
        super().__init__(message)
        self.platform_hint = platform_hint
        self.tried = tried
