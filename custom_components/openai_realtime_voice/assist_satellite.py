"""An Assist satellite entity per paired xiaozhi device.

The entity is the face of the device's home: it receives the home when it is made, shows
itself there while it is added, and the speech bridge of the device's connection calls it
directly (an Assist pipeline run, its events, the end of its spoken answer). Its state follows
the bridge: on the Realtime path no Assist pipeline runs, so the conversation's phase is
mirrored through `satellite_shim` (Home Assistant has no public setter); on the Assist pipeline path
the pipeline's own events drive it as for any satellite.

Announcements, started conversations and questions reach a board only while it is in a
conversation. A stock board opens its WebSocket only when it is woken (wake word or button:
`Application::ToggleChatState`, `StartListening` and the wake word handler are the firmware's
only callers of `OpenAudioChannel`) and sends no keepalive, so an idle board cannot be reached
and each action says so (`device_idle`). The features stay: Home Assistant checks them before
the entity runs, so dropping them while idle would turn that reason into "does not support"
(and skip the board silently in an area-wide announcement).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, override

from homeassistant.components import tts
from homeassistant.components.assist_pipeline import PipelineEvent
from homeassistant.components.assist_pipeline.pipeline import async_get_pipeline
from homeassistant.components.assist_satellite import (
    AssistSatelliteAnnouncement,
    AssistSatelliteConfiguration,
    AssistSatelliteEntityDescription,
    AssistSatelliteEntityFeature,
)
from homeassistant.components.assist_satellite.entity import AssistSatelliteState
from homeassistant.components.assist_satellite.errors import SatelliteBusyError
from homeassistant.components.ffmpeg import get_ffmpeg_manager
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bridge import (
    BridgePath,
    MediaError,
    SpeechBridge,
    async_device_action,
    async_transcode,
    async_tts_to_pcm,
    serving,
)
from .const import DOMAIN
from .entity import XiaozhiDeviceEntity, async_add_device_entities
from .home import DeviceHome
from .models import OpenAIRealtimeConfigEntry
from .realtime import RealtimeError
from .satellite_shim import SatelliteShim

PARALLEL_UPDATES = 0

SATELLITE = AssistSatelliteEntityDescription(key="assist_satellite", name=None)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: OpenAIRealtimeConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a satellite per paired device."""
    async_add_device_entities(
        entry,
        async_add_entities,
        lambda home: [XiaozhiAssistSatellite(home)],
    )


class XiaozhiAssistSatellite(XiaozhiDeviceEntity, SatelliteShim):
    """A xiaozhi device as an Assist satellite: announcements, conversations, state."""

    _attr_supported_features = (
        AssistSatelliteEntityFeature.ANNOUNCE | AssistSatelliteEntityFeature.START_CONVERSATION
    )
    # TTS answers (pipeline runs and announcements) as WAV, which the bridge resamples
    # in-process: HA's TTS otherwise converts every non-MP3 answer to MP3 with ffmpeg, only
    # for it to be decoded again. An engine that answers in MP3 is converted to WAV by HA.
    _attr_tts_options = {tts.ATTR_PREFERRED_FORMAT: "wav"}

    def __init__(self, home: DeviceHome) -> None:
        """Become the face of a paired device's home."""
        super().__init__(home, SATELLITE)
        self._mirrored = False
        self._speaking = False
        """Whether a line of an action plays on the device now (the satellite is busy)."""

    @override
    async def async_added_to_hass(self) -> None:
        """Become the device's face and follow its bridge."""
        await super().async_added_to_hass()
        self.async_on_remove(self.home.async_show(self))
        self.async_on_remove(self.device.async_add_listener(self._on_device_changed))

    @override
    async def async_will_remove_from_hass(self) -> None:
        """An Assist pipeline run in progress ends with the entity, while its state can change."""
        if (bridge := serving(self.home)) is not None and bridge.pipeline is not None:
            await bridge.pipeline.async_end_run()
        await super().async_will_remove_from_hass()

    @override
    def state_shown(self) -> bool:
        """Written while this entity is the device's face, not once it is being removed.

        The base class writes the state on the events of a run, and the run that its removal
        ends still ends with one.
        """
        return self.home.face is self

    @contextmanager
    def _responding(self) -> Iterator[None]:
        """While a line of ours plays on the Realtime path: busy and *responding*, then idle."""
        if self._speaking:
            raise SatelliteBusyError
        self._speaking = True
        self.shim_set_state(AssistSatelliteState.RESPONDING)
        try:
            yield
        finally:
            self._speaking = False
            self.shim_set_state(AssistSatelliteState.IDLE)

    @callback
    def _on_device_changed(self) -> None:
        """Mirror the Realtime conversation's phase as the satellite state.

        When the device leaves or the Assist pipeline takes over, a state mirrored from
        the Realtime path goes back to idle: nothing else would end it.
        """
        if self._speaking:
            return
        bridge = serving(self.home)
        if bridge is None or bridge.path is not BridgePath.REALTIME:
            if self._mirrored:
                self._mirrored = False
                if self.state != AssistSatelliteState.IDLE:
                    self.shim_set_state(AssistSatelliteState.IDLE)
            return
        state = AssistSatelliteState(bridge.phase)
        self._mirrored = True
        if self.state != state:
            self.shim_set_state(state)

    @property
    @override
    def extra_state_attributes(self) -> dict[str, Any]:
        """Which engine answers: `realtime`, `assist_pipeline`, or None while disconnected."""
        bridge = serving(self.home)
        return {"path": str(bridge.path) if bridge is not None else None}

    @callback
    @override
    def async_get_configuration(self) -> AssistSatelliteConfiguration:
        """The device's wake words live in its firmware; none are configurable here."""
        return AssistSatelliteConfiguration(
            available_wake_words=[], active_wake_words=[], max_active_wake_words=0
        )

    @override
    async def async_set_configuration(self, config: AssistSatelliteConfiguration) -> None:
        """Nothing to configure (see `async_get_configuration`)."""

    @override
    def on_pipeline_event(self, event: PipelineEvent) -> None:
        """Assist pipeline runs: the bridge shows the text and plays the spoken answer."""
        bridge = serving(self.home)
        if bridge is not None and bridge.pipeline is not None:
            bridge.pipeline.on_pipeline_event(event)

    def _bridge(self) -> SpeechBridge:
        """The serving bridge; an idle board cannot be reached (see the module docstring)."""
        if (bridge := serving(self.home)) is None:
            device = self.device_entry
            name = (device.name_by_user or device.name) if device is not None else None
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="device_idle",
                translation_placeholders={"device": name or self.device.mac},
            )
        return bridge

    def _has_tts_engine(self) -> bool:
        """Whether the entity's pipeline (the preferred one: it has no pipeline select) speaks."""
        pipeline = async_get_pipeline(self.hass, None)
        return tts.async_resolve_engine(self.hass, pipeline.tts_engine) is not None

    # --- the actions, before Home Assistant resolves them (`satellite_shim`) -----------------

    @override
    async def async_realtime_announce(self, message: str, media_id: str | None) -> bool:
        """Without media and without a TTS engine, speak the message in the Realtime voice."""
        bridge = self._bridge()  # before a TTS stream is made for a board that cannot play it
        if media_id or self._has_tts_engine():
            return False
        with self._responding():
            await self._say(bridge, message)
        return True

    @override
    async def async_realtime_start_conversation(
        self, start_message: str | None, start_media_id: str | None, extra_system_prompt: str | None
    ) -> bool:
        """On the Realtime path the session itself converses: extra instructions, then listen.

        Home Assistant's own flow needs a pipeline agent and refuses the built-in one; the
        Realtime session is the agent here, so the start message and the extra prompt go to it.
        """
        bridge = self._bridge()
        if start_media_id or bridge.path is not BridgePath.REALTIME:
            return False
        with self._responding():
            await async_device_action(
                bridge,
                bridge.async_converse(
                    start_message or None, extra_system_prompt or start_message or ""
                ),
            )
        return True

    @override
    async def async_realtime_ask_question(
        self, question: str | None, question_media_id: str | None
    ) -> str | None:
        """On the Realtime path the session speaks the question and transcribes the answer.

        Home Assistant's own flow plays the question, then takes the answer from the STT stage
        of an Assist pipeline run; on the Realtime path no pipeline runs, so the bridge's `ask`
        (the `openai_realtime_voice.ask` action's path) does both. The answer is awaited for
        the device's listening timeout, the time after which the device would go back to idle
        anyway.
        """
        bridge = self._bridge()
        if bridge.path is not BridgePath.REALTIME:
            return None
        if question_media_id or not question:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="question_media_unsupported"
            )
        timeout = bridge.listening_timeout()
        with self._responding():
            result = await async_device_action(
                bridge,
                bridge.async_ask(question, answer_timeout=timeout),
                busy=SatelliteBusyError,
            )
        if not result["answered"]:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="no_answer",
                translation_placeholders={"device": bridge.subentry.title},
            )
        sentence: str = result["transcript"]
        return sentence

    # --- Home Assistant's public hooks (its own flows, media resolved) -------------------------

    @override
    async def async_announce(self, announcement: AssistSatelliteAnnouncement) -> None:
        """Play the announcement on the device; returns once it has been heard."""
        await self._play(self._bridge(), announcement)

    @override
    async def async_start_conversation(
        self, start_announcement: AssistSatelliteAnnouncement
    ) -> None:
        """Announce, then listen: after `tts stop` the device listens by itself (auto mode)."""
        await self._play(self._bridge(), start_announcement)

    async def _play(self, bridge: SpeechBridge, announcement: AssistSatelliteAnnouncement) -> None:
        if self._speaking:
            raise SatelliteBusyError
        ffmpeg = get_ffmpeg_manager(self.hass).binary
        if announcement.media_id_source == "tts" and announcement.tts_token:
            stream = tts.async_get_stream(self.hass, announcement.tts_token)
            if stream is None:
                raise HomeAssistantError(
                    translation_domain=DOMAIN, translation_key="announcement_failed"
                )
            pcm = async_tts_to_pcm(ffmpeg, stream.async_stream_result())
        else:
            pcm = async_transcode(ffmpeg, announcement.media_id)
        self._speaking = True
        try:
            await bridge.async_play(pcm, announcement.message)
        except MediaError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="announcement_failed"
            ) from err
        finally:
            self._speaking = False

    async def _say(self, bridge: SpeechBridge, message: str) -> None:
        try:
            await bridge.async_say(message)
        except RealtimeError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="announcement_failed"
            ) from err
