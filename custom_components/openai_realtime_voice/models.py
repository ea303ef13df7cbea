"""What a loaded config entry holds (`entry.runtime_data`), typed for everything above it.

It sits low: the bridge, the platforms, the services and the views are all typed against
`OpenAIRealtimeConfigEntry`, and this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant

from .agent import AgentSessions
from .availability import ServiceMonitor
from .budget import Budget
from .const import DOMAIN
from .home import DeviceHome
from .realtime import RealtimeEndpoint
from .shared_turn import SharedTurns
from .usage import EntryUsage


@dataclass(kw_only=True)
class OpenAIRealtimeData:
    """What a loaded entry holds: the endpoint every Realtime session connects to."""

    endpoint: RealtimeEndpoint
    """The connection, with the first agent's model (what setup probes)."""
    agent_sessions: dict[str, AgentSessions] = field(default_factory=dict)
    """Realtime sessions of each Assist agent (by agent subentry id), one per conversation."""
    agent_adders: list[Callable[[ConfigSubentry], None]] = field(default_factory=list)
    """What the conversation platform calls to add the entity of an agent added while loaded."""
    devices: dict[str, DeviceHome] = field(default_factory=dict)
    """The home of each paired xiaozhi device, by MAC."""
    entity_adders: list[Callable[[DeviceHome], None]] = field(default_factory=list)
    """What each platform calls to add its entities for a device paired while loaded."""
    usage: EntryUsage
    """Token counts and estimated cost of every response of this entry."""
    budget: Budget
    """The monthly budget this entry's estimated cost is held to (and where sessions connect)."""
    shared_turns: SharedTurns
    """Spoken turns the speech-to-text, agent and text-to-speech entities share (issue 32)."""
    service: ServiceMonitor
    """Whether the entry's Realtime service answers: logs each change once, checks it again
    while it does not, and raises a repair issue when it has been unreachable for minutes."""


type OpenAIRealtimeConfigEntry = ConfigEntry[OpenAIRealtimeData]


def find_home(hass: HomeAssistant, mac: str) -> tuple[OpenAIRealtimeConfigEntry, DeviceHome] | None:
    """The loaded entry a device is paired to, and its home there.

    The hass-wide views and actions find a device this way, by the MAC they were given.
    """
    entry: OpenAIRealtimeConfigEntry
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        if (home := entry.runtime_data.devices.get(mac)) is not None:
            return entry, home
    return None
