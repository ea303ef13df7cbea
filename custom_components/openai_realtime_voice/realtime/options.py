"""Tuning knobs of the Realtime client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from .reconnect import ReconnectPolicy

__all__ = ["JITTER", "ClientOptions"]

JITTER: Final = 0.25  # retries wait 75-100 % of their delay


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """Tuning knobs; the defaults suit the OpenAI service."""

    open_timeout: float = 10.0
    ping_interval: float | None = 20.0
    reconnect_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    # A session proves the service works (key, model, settings) once it answered a turn or
    # lived this long; until then each session that ends counts as a failed try and the next
    # waits the backoff. 30 s is well past the service's own failure modes (a refusal within
    # the first second, a drop at the first response) and ~4x the backoff cap, so a service
    # that drops every session sooner gets at most one session per backoff delay.
    proven_after: float = 30.0
    session_limit: float | None = None  # None: 60 min OpenAI, 30 min Azure
    renew_margin: float = 120.0
    max_history_items: int = 50
    # The service's answer to a request: response.created, or session.updated (or its error).
    response_timeout: float = 15.0
    # How long create_response waits for the response in progress to end before its own.
    busy_timeout: float = 60.0
    create_retries: int = 5  # resends of a response.create the service was too busy for

    def retry_policy(
        self,
        attempts: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> ReconnectPolicy:
        """The backoff for `attempts` retries: base doubling up to the cap, with jitter."""
        return ReconnectPolicy(
            base=self.backoff_base,
            cap=self.backoff_max,
            jitter=JITTER,
            max_attempts=attempts,
            sleep=sleep,
        )
