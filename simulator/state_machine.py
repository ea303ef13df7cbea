"""The device states as the firmware changes them, and what each change does to the audio.

`DeviceStateMachine::TransitionTo` refuses what `IsValidTransition` (`firmware.py`) does not
allow; `HandleStateChangedEvent` then cancels a deferred listening start, turns voice
processing (`Microphone.enabled`) off when Idle and when Speaking outside realtime mode,
resets the decoder when Speaking, and starts listening when Listening: at once, or in auto
mode once the playback queue drained (`pending_listening_start_`).
"""

from __future__ import annotations

import asyncio
import logging

from custom_components.openai_realtime_voice.xiaozhi import ListenMode, ListenStart, encode_object

from .board import Board
from .firmware import DeviceState, is_valid_transition

_LOGGER = logging.getLogger(__name__)


class StateMachine:
    """The board's device state, its listening mode and the deferred listening start."""

    def __init__(self, device: Board, listen_mode: ListenMode) -> None:
        """Idle, listening in `listen_mode` once it listens."""
        self._device = device
        self.state = DeviceState.IDLE
        self.listen_mode = listen_mode
        self.refused_transitions: list[tuple[DeviceState, DeviceState]] = []
        self.popup_on_listening = False  # play_popup_on_listening_
        self._pending_start: asyncio.TimerHandle | None = None  # pending_listening_start_

    @property
    def listen_start_pending(self) -> bool:
        """`pending_listening_start_`: Listening waits for the playback queue to drain."""
        return self._pending_start is not None

    async def set_state(self, new: DeviceState) -> bool:
        """`DeviceStateMachine::TransitionTo` plus what `HandleStateChangedEvent` does.

        A refused transition (`IsValidTransition`) changes nothing and is recorded.
        """
        try:
            return await self._transition(new)
        finally:
            self._device.changes.notify()

    async def _transition(self, new: DeviceState) -> bool:
        device = self._device
        old = self.state
        if not is_valid_transition(old, new):
            _LOGGER.warning("Invalid state transition: %s -> %s", old, new)
            self.refused_transitions.append((old, new))
            return False
        self.state = new
        # HandleStateChangedEvent: any state change cancels a deferred listening start.
        self.cancel_pending_start()
        if new is DeviceState.IDLE:
            device.microphone.enabled = False
        elif new is DeviceState.SPEAKING:
            if self.listen_mode is not ListenMode.REALTIME:
                device.microphone.enabled = False
            device.playback.reset()  # ResetDecoder clears the decode and playback queues
        elif new is DeviceState.LISTENING and (
            self.popup_on_listening or not device.microphone.enabled
        ):
            if self.listen_mode is ListenMode.AUTO and device.playback.queue_depth(device.now()):
                # Auto mode: wait until the playback queue drained before listening again.
                delay = device.playback.drained_at() - device.now()
                self._pending_start = asyncio.get_running_loop().call_later(
                    delay, self._on_playback_drained
                )
            else:
                await self.start_listening_audio()
        return True

    def idle(self) -> None:
        """The audio channel is gone (`on_audio_channel_closed_`, `CloseAudioChannel`): Idle."""
        self.cancel_pending_start()
        self.state = DeviceState.IDLE
        self._device.microphone.enabled = False
        self._device.changes.notify()

    def cancel_pending_start(self) -> None:
        """Forget a deferred listening start."""
        if self._pending_start is not None:
            self._pending_start.cancel()
            self._pending_start = None

    def _on_playback_drained(self) -> None:
        """MAIN_EVENT_PLAYBACK_DRAINED with `pending_listening_start_` set."""
        self._pending_start = None
        if self.state is DeviceState.LISTENING:
            self._device.spawn(self.start_listening_audio())

    async def start_listening_audio(self) -> None:
        """`StartListeningAudio`: `listen start` in the current mode, then the microphone."""
        device = self._device
        if self.state is not DeviceState.LISTENING or device.channel.ws is None:
            return
        self.popup_on_listening = False
        device.playback.reset()  # EnableVoiceProcessing(true) resets the decoder
        await device.channel.send_text(
            encode_object(ListenStart(self.listen_mode, session_id=device.session_id).to_dict())
        )
        device.microphone.enabled = True
