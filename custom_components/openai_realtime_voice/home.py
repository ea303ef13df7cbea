"""The home of one paired device in its config entry: what outlives the device's connections.

`entry.runtime_data.devices[mac]` holds one `DeviceHome` per paired device, from the entry's
setup (or the pairing) until the device is removed or the entry unloads. It keeps the device's
state (`DeviceState`: last seen, tools, volume, latencies, errors, its uplink budget), its
typed-turn budget, and who serves it and shows it: the speech bridge of its live connection
(attached by the WebSocket view's server) and its Assist satellite entity, the device's face
in Home Assistant. The bridge and the satellite reach each other through the home: direct
calls, no look-up.

The home sits below the bridge (the entry's runtime data holds it, and the bridge is typed
against the entry), so it knows the bridge only as the connection's `DeviceLink`; the bridge
package narrows it again (`bridge.serving`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable
from typing import Protocol

from homeassistant.components.assist_pipeline.models import PipelineStage
from homeassistant.config_entries import ConfigSubentry
from homeassistant.core import CALLBACK_TYPE, Context, callback
from homeassistant.util import dt as dt_util

from .endpoint import DeviceLink, DeviceState
from .endpoint.hub import LiveConnection


class DeviceFace(Protocol):
    """What the speech bridge needs of the device's Assist satellite entity."""

    @property
    def entity_id(self) -> str:
        """The entity's id (the agent id of the device conversation's chat log)."""

    async def async_accept_pipeline_from_satellite(
        self,
        audio_stream: AsyncIterable[bytes],
        start_stage: PipelineStage = PipelineStage.STT,
        end_stage: PipelineStage = PipelineStage.TTS,
        wake_word_phrase: str | None = None,
        *,
        context: Context | None = None,
    ) -> None:
        """Run an Assist pipeline on the device's audio (Home Assistant's satellite entity)."""

    def tts_response_finished(self) -> None:
        """The device has played the pipeline's spoken answer."""


class DeviceHome:
    """One paired device of an entry: its state, budget, bridge and satellite."""

    def __init__(self, subentry: ConfigSubentry) -> None:
        """A home for the device that `subentry` paired; nothing serves it yet."""
        self.mac = str(subentry.unique_id)
        self.subentry = subentry
        """The device's subentry as it is now (a reconfigure replaces the object)."""
        self.state = DeviceState(self.mac)
        """What Home Assistant knows about the device (its entities read this)."""
        self.detects: deque[float] = deque()
        """When its recent typed turns came: per device, so reconnecting refills nothing."""
        self.bridge: DeviceLink | None = None
        """The speech bridge of its live connection, while one serves it."""
        self.face: DeviceFace | None = None
        """Its Assist satellite entity, while added to Home Assistant."""

    # --- the connection -------------------------------------------------------------------

    async def async_attach(self, connection: LiveConnection) -> None:
        """Make this the device's live connection, closing the one it replaces."""
        state = self.state
        previous, state.connection = state.connection, connection
        if previous is not None and previous is not connection:
            await previous.async_close("replaced by a new connection")
        state.last_seen = dt_util.utcnow()
        state.async_notify()

    @callback
    def async_detach(self, connection: LiveConnection) -> None:
        """Forget a closed connection (unless a newer one already replaced it)."""
        state = self.state
        if state.connection is not connection:
            return
        state.connection = None
        state.tools = []
        state.last_seen = dt_util.utcnow()
        state.async_notify()

    async def async_disconnect(self, reason: str) -> None:
        """Close the device's live connection, if any, telling the device why."""
        if (connection := self.state.connection) is not None:
            await connection.async_close(reason)

    # --- who serves and shows it ----------------------------------------------------------

    @callback
    def async_serve(self, bridge: DeviceLink) -> None:
        """A started bridge serves the device now; its entities follow at once."""
        self.bridge = bridge
        self.state.async_notify()

    @callback
    def async_release(self, bridge: DeviceLink) -> None:
        """A stopping bridge no longer serves the device (unless a newer one already does)."""
        if self.bridge is not bridge:  # pragma: no cover - a replaced bridge stops first
            return
        self.bridge = None
        self.state.async_notify()

    @callback
    def async_show(self, face: DeviceFace) -> CALLBACK_TYPE:
        """Make `face` the device's satellite entity; returns the remover.

        The remover forgets only this entity: one that replaced it stays the face.
        """
        self.face = face

        @callback
        def remove() -> None:
            if self.face is face:
                self.face = None

        return remove
