"""The device subentry flow: pair a waiting device, edit a paired device's profile."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigEntryState, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.selector import SelectOptionDict

from .const import CONF_CODE, CONF_MAC, DOMAIN
from .endpoint import DATA_HUB, PairingResult
from .flow_schemas import (
    pending_devices_schema,
    profile_from_form,
    profile_schema,
    profile_to_form,
)
from .profile import CONF_AREA, CONF_PROFILE, profile_of, validate_profile


class DeviceSubentryFlow(ConfigSubentryFlow):
    """Pair a device that is waiting for approval, from the entry's "Add device" button."""

    def __init__(self) -> None:
        """Nothing listed yet."""
        super().__init__()
        self._shown: dict[str, str] = {}
        """The Client-Id of each device the form listed, by MAC."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Choose a waiting device and type its code."""
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        hub = self.hass.data[DATA_HUB]
        errors: dict[str, str] = {}
        if user_input is not None:
            mac = str(user_input[CONF_MAC])
            # The code goes to the device the user was shown (never a reset one, see below),
            # not to one that took its place since.
            shown = self._shown.get(mac, "")
            result = hub.pairing.check_code(mac, str(user_input[CONF_CODE]), shown)
            if result is PairingResult.OK:
                title = hub.pairing.pending[mac].title
                data = hub.pairing.approve(mac)
                for flow in self.hass.config_entries.flow.async_progress_by_handler(
                    DOMAIN, match_context={"unique_id": mac}
                ):
                    self.hass.config_entries.flow.async_abort(flow["flow_id"])
                return self.async_create_entry(title=title, data=data, unique_id=mac)
            errors["base"] = result.value
        # A reset device (paired, new Client-Id) is paired again from its discovered card.
        waiting = {p.mac: p for p in hub.pairing.pending_devices() if not p.reset}
        if not waiting:
            return self.async_abort(reason="no_pending_devices")
        self._shown = {mac: p.client_id for mac, p in waiting.items()}
        schema = pending_devices_schema(
            [
                SelectOptionDict(value=mac, label=f"{p.title} {p.firmware} · {p.client_id_start}…")
                for mac, p in waiting.items()
            ]
        )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Edit the device's profile: its overrides of the entry-wide settings."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        devices = dr.async_get(self.hass)
        device = devices.async_get_device_by_identifier(
            (DOMAIN, str(subentry.unique_id)), entry.entry_id
        )
        errors: dict[str, str] = {}
        if user_input is not None:
            profile = profile_from_form({k: v for k, v in user_input.items() if k != CONF_AREA})
            if not (errors := validate_profile(profile)):
                if device is not None:
                    devices.async_update_device(device.id, area_id=user_input.get(CONF_AREA))
                return self.async_update_and_abort(
                    entry, subentry, data={**subentry.data, CONF_PROFILE: profile}
                )
        suggested = {**profile_to_form(profile_of(subentry)), **(user_input or {})}
        if user_input is None and device is not None and device.area_id:
            suggested[CONF_AREA] = device.area_id
        users = [
            SelectOptionDict(value=user.id, label=user.name or user.id)
            for user in await self.hass.auth.async_get_users()
            if not user.system_generated and user.is_active
        ]
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(profile_schema(users), suggested),
            errors=errors,
            description_placeholders={"device": subentry.title},
        )
