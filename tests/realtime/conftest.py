"""Fixtures for the Realtime client tests."""

from __future__ import annotations

from tests.realtime_server import realtime_server

__all__ = ["realtime_server"]
