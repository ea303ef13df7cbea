"""Which services the model may call and how risky each one is: pure rules, no I/O.

The allowlist is the user's choice; the denylist is ours and always wins, because those services
run code, touch files, manage the system or talk to devices below Home Assistant's entity model,
where exposure and user permissions cannot be checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
import re
from typing import Final

from homeassistant.core import SupportsResponse
from homeassistant.helpers import llm

# Patterns over "domain.service" that are never offered, whatever the allowlist says.
DENIED_SERVICES: Final = (
    # System control, code execution and shell access.
    "homeassistant.*",
    "hassio.*",
    "supervisor.*",
    "shell_command.*",
    "python_script.*",
    "pyscript.*",
    "command_line.*",
    "rest_command.*",
    "hacs.*",
    # Configuration, storage, logs and the files on disk.
    "backup.*",
    "recorder.*",
    "logger.*",
    "system_log.*",
    "file.*",
    "downloader.*",
    "auth.*",
    "cloud.*",
    "lovelace.*",
    "frontend.*",
    "template.*",
    "camera.snapshot",
    "camera.record",
    "update.install",
    "update.skip",
    "update.clear_skipped",
    # Browsing lists every media source (every camera among them), exposed or not.
    "media_player.browse_media",
    "*.reload",
    "*.reload_*",
    "*.purge*",
    # Raw protocol access below the entity model (no exposure check possible).
    "mqtt.*",
    "zwave_js.*",
    "zha.*",
    "knx.*",
    "modbus.*",
    # Scenes that set arbitrary entity states, and assistants calling assistants.
    "scene.apply",
    "scene.create",
    "scene.delete",
    "conversation.*",
    "openai_realtime_voice.*",
)

# Services that hand over physical access or disable protection: always confirmed first.
ALWAYS_CONFIRM: Final = frozenset(
    {
        "lock.unlock",
        "lock.open",
        "alarm_control_panel.alarm_disarm",
        "valve.open_valve",
        "valve.set_valve_position",
        "valve.toggle",
    }
)
# Cover services that can open something; confirmed when a target is an access cover.
COVER_OPENING: Final = frozenset({"cover.open_cover", "cover.set_cover_position", "cover.toggle"})
ACCESS_COVER_CLASSES: Final = frozenset({"garage", "gate", "door"})

# Entities of these domains, reached through a scene, script or automation, hand over physical
# access or disable protection like the services above (covers: of the access classes).
PROTECTED_DOMAINS: Final = frozenset({"lock", "alarm_control_panel", "valve"})
# Calls that run what a scene, script or automation contains (`script.<name>` runs its script).
RUNS_CONTENT: Final = frozenset(
    {"scene.turn_on", "script.turn_on", "script.toggle", "automation.trigger"}
)
_SCRIPT_SERVICES_NOT_RUNNING: Final = frozenset({"turn_off", "reload"})

# Media sources whose item is an entity (`media-source://camera/camera.porch`): the entity must
# be exposed like any other target.
ENTITY_MEDIA_SOURCES: Final = frozenset({"camera", "image"})
# Media sources that serve camera recordings by their own ids (no entity to check): refused.
RECORDING_MEDIA_SOURCES: Final = frozenset(
    {"frigate", "motioneye", "nest", "netatmo", "reolink", "unifiprotect"}
)

_ALLOWLIST_ENTRY = re.compile(r"^[a-z0-9_]+(\.([a-z0-9_]+|\*))?$")
_DELETING_PREFIXES: Final = ("remove", "delete", "clear")
_IDEMPOTENT_PREFIXES: Final = ("set_", "turn_on", "turn_off", "open", "close", "lock", "select_")

READ_ONLY: Final = llm.ToolAnnotations(
    read_only=True, destructive=False, idempotent=True, open_world=False
)


def parse_allowlist(entries: Iterable[object]) -> frozenset[str]:
    """Normalise allowlist entries ("light", "weather.get_forecasts", "todo.*"), dropping junk."""
    allowed: set[str] = set()
    for entry in entries:
        if not isinstance(entry, str):
            continue
        normalised = entry.strip().lower()
        if _ALLOWLIST_ENTRY.match(normalised):
            allowed.add(normalised.removesuffix(".*"))
    return frozenset(allowed)


def is_denied(domain: str, service: str) -> bool:
    """Return True for services that are never offered."""
    full_name = f"{domain}.{service}"
    return any(fnmatchcase(full_name, pattern) for pattern in DENIED_SERVICES)


def is_allowed(allowlist: frozenset[str], domain: str, service: str) -> bool:
    """Return True if the allowlist names the service or its domain and it is not denied."""
    if domain not in allowlist and f"{domain}.{service}" not in allowlist:
        return False
    return not is_denied(domain, service)


def may_need_confirmation(domain: str, service: str) -> bool:
    """Return True if some call of this service must be confirmed by the user first."""
    full_name = f"{domain}.{service}"
    return (
        full_name in ALWAYS_CONFIRM or full_name in COVER_OPENING or runs_content(domain, service)
    )


def runs_content(domain: str, service: str) -> bool:
    """Return True if the call runs the actions of the scenes, scripts or automations it names."""
    if domain == "script" and service not in _SCRIPT_SERVICES_NOT_RUNNING:
        return True
    return f"{domain}.{service}" in RUNS_CONTENT


def is_protected(domain: str, device_class: str | None) -> bool:
    """Return True for an entity whose actions hand over access (lock, alarm, valve, door)."""
    return domain in PROTECTED_DOMAINS or (
        domain == "cover" and device_class in ACCESS_COVER_CLASSES
    )


def needs_confirmation(domain: str, service: str, device_classes: Iterable[str | None]) -> bool:
    """Return True if this call (on targets of these device classes) must be confirmed first."""
    full_name = f"{domain}.{service}"
    if full_name in ALWAYS_CONFIRM:
        return True
    if full_name in COVER_OPENING:
        return any(device_class in ACCESS_COVER_CLASSES for device_class in device_classes)
    return False


def annotations_for(
    domain: str, service: str, supports_response: SupportsResponse
) -> llm.ToolAnnotations:
    """Describe the tool honestly: data-only services read, access and deletion are destructive."""
    if supports_response is SupportsResponse.ONLY:
        return READ_ONLY
    destructive = may_need_confirmation(domain, service) or service.startswith(_DELETING_PREFIXES)
    return llm.ToolAnnotations(
        read_only=False,
        destructive=destructive,
        idempotent=service.startswith(_IDEMPOTENT_PREFIXES),
        open_world=False,
    )
