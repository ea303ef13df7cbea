"""What the user is told about problems: repair issues, and "unavailable" / "back" log lines.

Issues: libopus missing (fixable: the flow checks again after the user installed it), quota
or billing exhausted, the Realtime service unreachable for minutes (`availability.py` decides
when), a setting the service refused (model, voice, transcription model, tools), and a paired
device whose firmware is too old for the protocol.
"""

from __future__ import annotations

import re
from typing import Any, Final

from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .audio import OpusNotFoundError, load_opuslib
from .const import DOMAIN, LOGGER
from .realtime import (
    RealtimeAuthError,
    RealtimeError,
    RealtimeQuotaError,
    RealtimeSettingRefused,
    Setting,
)

ISSUE_LIBOPUS: Final = "libopus_missing"

MIN_FIRMWARE: Final = (1, 8, 0)
"""Oldest xiaozhi firmware we serve: 1.8.0 dropped the legacy `iot` messages for MCP, the only
way this integration reaches a device's tools (volume, status)."""

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def quota_issue_id(entry: ConfigEntry[Any]) -> str:
    """The issue id of an entry's exhausted quota."""
    return f"quota_exceeded_{entry.entry_id}"


def unreachable_issue_id(entry: ConfigEntry[Any]) -> str:
    """The issue id of an entry whose Realtime service has been unreachable for a while."""
    return f"service_unreachable_{entry.entry_id}"


def setting_issue_id(entry: ConfigEntry[Any], setting: Setting) -> str:
    """The issue id of a setting of an entry the service refused."""
    return f"{setting}_refused_{entry.entry_id}"


@callback
def async_setting_issue(
    hass: HomeAssistant, entry: ConfigEntry[Any], refused: RealtimeSettingRefused | None
) -> None:
    """Raise the issue naming a refused setting, or clear them all (the settings worked)."""
    if refused is None:
        for setting in Setting:
            ir.async_delete_issue(hass, DOMAIN, setting_issue_id(entry, setting))
        return
    LOGGER.warning(
        "The Realtime service refused the %s of %s: %s", refused.setting, entry.title, refused
    )
    ir.async_create_issue(
        hass,
        DOMAIN,
        setting_issue_id(entry, refused.setting),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=f"{refused.setting}_refused",
        translation_placeholders={"title": entry.title, "error": str(refused)},
    )


@callback
def async_report_refusal(
    hass: HomeAssistant, entry: ConfigEntry[Any], error: RealtimeError
) -> bool:
    """Tell the user what a Realtime error asks of them; whether trying again may help.

    A rejected key starts reauthentication and an exhausted quota raises its issue (either may
    be fixed on the account's side: trying again later may help); a refused setting raises the
    issue naming it (only new agent settings help). Other errors are outages: nothing to raise.
    """
    if isinstance(error, RealtimeAuthError):
        entry.async_start_reauth(hass)
    elif isinstance(error, RealtimeQuotaError):
        async_quota_issue(hass, entry, active=True)
    elif isinstance(error, RealtimeSettingRefused):
        async_setting_issue(hass, entry, error)
        return False
    return True


def firmware_issue_id(mac: str) -> str:
    """The issue id of a device whose firmware is too old."""
    return f"firmware_too_old_{mac.replace(':', '')}"


@callback
def async_quota_issue(hass: HomeAssistant, entry: ConfigEntry[Any], active: bool) -> None:
    """Raise (the service refused for quota or billing) or clear (a request succeeded)."""
    if not active:
        ir.async_delete_issue(hass, DOMAIN, quota_issue_id(entry))
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        quota_issue_id(entry),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="quota_exceeded",
        translation_placeholders={"title": entry.title},
    )


@callback
def async_unreachable_issue(
    hass: HomeAssistant, entry: ConfigEntry[Any], error: str | None
) -> None:
    """Raise (with the last error) or clear (`error` None) the "service unreachable" issue."""
    if error is None:
        ir.async_delete_issue(hass, DOMAIN, unreachable_issue_id(entry))
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        unreachable_issue_id(entry),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="service_unreachable",
        translation_placeholders={"title": entry.title, "error": error},
    )


async def async_check_libopus(hass: HomeAssistant) -> bool:
    """Load libopus off the event loop; raise the repair issue when it is missing.

    Without libopus the entry still works for text (the Assist agent); devices need it.
    """
    try:
        await hass.async_add_executor_job(load_opuslib)
    except OpusNotFoundError as err:
        LOGGER.warning(
            "Voice devices need libopus; install it with `%s` (%s)", err.platform_hint, err
        )
        ir.async_create_issue(
            hass,
            DOMAIN,
            ISSUE_LIBOPUS,
            is_fixable=True,
            severity=ir.IssueSeverity.ERROR,
            translation_key=ISSUE_LIBOPUS,
            translation_placeholders={"command": err.platform_hint},
        )
        return False
    ir.async_delete_issue(hass, DOMAIN, ISSUE_LIBOPUS)
    return True


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """`1.9.2` (or `v2.0`, `2.4.2-beta`) as a tuple; None when it is not a version."""
    if not text or (match := _VERSION.match(text.strip())) is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def firmware_too_old(version: str | None = None, *, mcp: bool | None = None) -> bool:
    """Whether a device cannot be served: its hello lacks MCP, or its version is below 1.8.0.

    An unknown or unreadable version is given the benefit of the doubt (forks number freely).
    """
    if mcp is False:
        return True
    parsed = parse_version(version)
    return parsed is not None and parsed < MIN_FIRMWARE


@callback
def async_firmware_issue(
    hass: HomeAssistant,
    mac: str,
    name: str,
    version: str | None = None,
    *,
    mcp: bool | None = None,
) -> bool:
    """Raise or clear a device's "firmware too old" issue; returns whether it is raised.

    Call it with what the device reports: the OTA body's `application.version`, the hello's
    `features.mcp`. A device that was updated clears the issue on its next check.
    """
    issue_id = firmware_issue_id(mac)
    if not firmware_too_old(version, mcp=mcp):
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return False
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="firmware_too_old",
        translation_placeholders={
            "name": name,
            "version": version or "unknown",
            "minimum": ".".join(map(str, MIN_FIRMWARE)),
        },
    )
    return True


class LibopusRepairFlow(RepairsFlow):
    """Check again for libopus after the user installed it."""

    async def async_step_init(self, user_input: dict[str, str] | None = None) -> RepairsFlowResult:
        """Start at the explanation (the first step gets the issue id, not user input)."""
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, str] | None = None
    ) -> RepairsFlowResult:
        """Explain the fix; check again on submit."""
        if user_input is None:
            issue = ir.async_get(self.hass).async_get_issue(DOMAIN, ISSUE_LIBOPUS)
            placeholders = issue.translation_placeholders if issue is not None else None
            return self.async_show_form(step_id="confirm", description_placeholders=placeholders)
        if await async_check_libopus(self.hass):
            return self.async_create_entry(data={})
        return self.async_abort(reason="still_missing")


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The repairs platform: only the libopus issue is fixable."""
    return LibopusRepairFlow()


class AvailabilityLog:
    """Logs "unavailable" once when something starts failing and "back" once when it recovers.

    Every failure in between goes to debug, so a service that is down does not flood the log.
    A failure its reporter has logged itself (`logged=True`) only changes the state, and the
    recovery from such an outage is not announced either.
    """

    def __init__(self, what: str) -> None:
        """`what` names the thing in the log lines, e.g. "Realtime service for <entry title>"."""
        self.what = what
        self.available = True
        self._told = False

    def failed(self, error: object, *, logged: bool = False) -> None:
        """Record a failure."""
        self.available = False
        if logged:
            return
        if not self._told:
            self._told = True
            LOGGER.info("%s is unavailable: %s", self.what, error)
        else:
            LOGGER.debug("%s is still unavailable: %s", self.what, error)

    def succeeded(self) -> None:
        """Record a success."""
        self.available = True
        if self._told:
            self._told = False
            LOGGER.info("%s is back", self.what)
