"""One demo home, added from configuration.yaml or in the UI."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlow, ConfigFlowResult

from . import DOMAIN


class DemoHomeConfigFlow(ConfigFlow, domain=DOMAIN):
    """Creates the entry without questions (the manifest allows a single one)."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Add the demo home."""
        return self.async_create_entry(title="Demo home", data={})

    async def async_step_import(self, import_data: dict[str, Any]) -> ConfigFlowResult:
        """`demo_home:` in configuration.yaml."""
        return await self.async_step_user()
