"""Shared fixtures for the OpenAI Realtime Voice tests."""

from __future__ import annotations

from collections.abc import Generator

import pytest

# phcc puts its own testing_config/custom_components first on sys.path; importing ours here
# makes Home Assistant's loader find this integration.
import custom_components.openai_realtime  # noqa: F401


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> Generator[None]:
    """Let Home Assistant load custom integrations in every test."""
    yield
