"""A Home Assistant Voice PE in the test process: an ESPHome device on the native API.

Home Assistant's own `esphome` integration (aioesphomeapi) connects to it over TCP with the
plaintext API, as to a flashed device, and the device answers as ESPHome's firmware does:

- Framing (`esphome/components/api/api_frame_helper_plaintext.cpp`): a 0x00 preamble, the
  message's length and type as varints, then the protobuf message. The message classes are
  aioesphomeapi's (`aioesphomeapi.api_pb2`); their type numbers are those of `api.proto`
  (aioesphomeapi's `core.MESSAGE_TYPE_TO_PROTO`).
- Hello, device info and the entity list as `api_connection.cpp` answers them; the voice
  assistant's feature flags are those of a `voice_assistant:` with a `media_player:` (the Voice
  PE's `home-assistant-voice.yaml`): VOICE_ASSISTANT | API_AUDIO | TIMERS | ANNOUNCE |
  START_CONVERSATION, no SPEAKER, so answers are played from the URL Home Assistant gives.
- The media player offers the formats of the Voice PE's `NabuMediaPlayer::get_traits` (FLAC,
  48 kHz; mono for announcements), so Home Assistant converts the speech to that.
- A pipeline run follows `voice_assistant.cpp`: `VoiceAssistantRequest(start=True)` with
  `USE_VAD` (on-device wake word: `use_wake_word: false`) and the wake word's phrase (sent
  again when the device listens on by itself); microphone chunks of 32 ms (`SEND_BUFFER_SIZE`),
  at the pace they are recorded, as `VoiceAssistantAudio` once `VoiceAssistantResponse(port=0)`
  arrives, until `STT_VAD_END`. The media player plays the run's streaming URL (from
  `RUN_START`) at `INTENT_PROGRESS` with `tts_start_streaming`, else the `TTS_END` URL, in real
  time, and then says `VoiceAssistantAnnounceFinished`. `VoiceAssistantAnnounceRequest` plays
  the pre-announcement and the media; with `start_conversation` the device listens afterwards,
  as it does after an `INTENT_END` with `continue_conversation`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aioesphomeapi import VoiceAssistantFeature, api_pb2 as pb
from aioesphomeapi.core import MESSAGE_TYPE_TO_PROTO
from aiohttp import ClientSession
from google.protobuf.message import Message

NAME = "home-assistant-voice-0a1b2c"
MAC = "AA:BB:CC:0A:1B:2C"
FEATURES = (
    VoiceAssistantFeature.VOICE_ASSISTANT
    | VoiceAssistantFeature.API_AUDIO
    | VoiceAssistantFeature.TIMERS
    | VoiceAssistantFeature.ANNOUNCE
    | VoiceAssistantFeature.START_CONVERSATION
)
MEDIA_PLAYER_KEY = 1
CHUNK_BYTES = 1024  # SEND_BUFFER_SIZE: 32 ms of 16 kHz PCM16
MAX_SILENCE_CHUNKS = 150  # the microphone's 4.8 s after the speech (HA's VAD ends it sooner)
USE_VAD = pb.VOICE_ASSISTANT_REQUEST_USE_VAD
TYPE_OF: dict[type[Message], int] = {cls: num for num, cls in MESSAGE_TYPE_TO_PROTO.items()}

Event = pb.VoiceAssistantEventResponse


@dataclass
class Played:
    """What the media player played: a URL's audio, decoded to 24 kHz PCM16 mono."""

    url: str
    pcm: bytes
    first_audio: float
    """When the first bytes of it arrived (the loop's clock)."""


@dataclass
class Run:
    """One pipeline run the device asked for: Home Assistant's events and what it played."""

    events: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    played: list[Played] = field(default_factory=list)
    speech_ended: float = 0.0
    """When the last chunk of the user's speech went out (the loop's clock)."""
    vad_end: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    playing: asyncio.Task[None] | None = None

    @property
    def types(self) -> list[str]:
        """The events' names (VOICE_ASSISTANT_RUN_START -> run-start), in order."""
        return [_name(kind) for kind, _ in self.events]

    def of(self, name: str) -> dict[str, str]:
        """The data of the one event of a name."""
        found = [data for kind, data in self.events if _name(kind) == name]
        assert len(found) == 1, (name, self.types)
        return found[0]


@dataclass
class Announcement:
    """A `VoiceAssistantAnnounceRequest` and what the media player played of it."""

    text: str
    start_conversation: bool
    played: list[Played] = field(default_factory=list)


def _name(kind: int) -> str:
    full = str(pb.VoiceAssistantEvent.Name(kind))  # type: ignore[arg-type]
    return full.removeprefix("VOICE_ASSISTANT_").lower().replace("_", "-")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


async def _read_varint(reader: asyncio.StreamReader) -> int:
    value = shift = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


async def decode(body: bytes) -> bytes:
    """Audio a URL served, as 24 kHz PCM16 mono (the device's decoder, here ffmpeg's)."""
    ffmpeg = await asyncio.create_subprocess_exec(
        "ffmpeg",
        *("-hide_banner", "-loglevel", "error", "-i", "pipe:"),
        *("-f", "s16le", "-ac", "1", "-ar", "24000", "pipe:"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    pcm, _ = await ffmpeg.communicate(body)
    assert ffmpeg.returncode == 0
    return pcm


class EsphomeSatellite:
    """The device: serves Home Assistant's API connection, listens and plays on demand."""

    def __init__(self, port: int) -> None:
        """Listen on 127.0.0.1:`port` once started."""
        self.port = port
        self.subscribed = asyncio.Event()
        """Home Assistant's assist satellite subscribed to the voice assistant."""
        self.runs: asyncio.Queue[Run] = asyncio.Queue()
        """Finished pipeline runs (after RUN_END, and after the media player finished)."""
        self.announcements: asyncio.Queue[Announcement] = asyncio.Queue()
        self.next_speech: list[bytes] = []
        """What the user says each time the microphone opens, in order (16 kHz PCM16)."""
        self.conversation_id = ""
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._http: ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._run: Run | None = None
        self._run_url = ""
        self._continue = False
        self._started: asyncio.Future[pb.VoiceAssistantResponse] | None = None

    async def start(self) -> None:
        """Accept Home Assistant's connections."""
        self._http = ClientSession()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Close the connection, the server and the media player's HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._http is not None:
            await self._http.close()

    def wake(self) -> None:
        """The wake word: the microphone opens and the device asks for a pipeline run."""
        self._spawn(self._listen())

    # The connection ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        try:
            while True:
                if (await reader.readexactly(1))[0] != 0x00:
                    return  # not the plaintext API: the firmware drops the connection
                length = await _read_varint(reader)
                kind = await _read_varint(reader)
                body = await reader.readexactly(length)
                message = MESSAGE_TYPE_TO_PROTO[kind]()
                message.ParseFromString(body)
                if not self._handle(message):
                    return
        except asyncio.IncompleteReadError, ConnectionError:
            return
        finally:
            writer.close()

    def send(self, message: Message) -> None:
        """Write one frame to Home Assistant."""
        assert self._writer is not None
        body = message.SerializeToString()
        self._writer.write(b"\x00" + _varint(len(body)) + _varint(TYPE_OF[type(message)]) + body)

    def _handle(self, message: Message) -> bool:
        """Answer one message as `api_connection.cpp` does; False closes the connection."""
        if isinstance(message, pb.HelloRequest):
            self.send(
                pb.HelloResponse(
                    api_version_major=1,
                    api_version_minor=14,
                    server_info=f"{NAME} (esphome v2026.9.0)",
                    name=NAME,
                )
            )
        elif isinstance(message, pb.DeviceInfoRequest):
            self.send(
                pb.DeviceInfoResponse(
                    name=NAME,
                    friendly_name="Home Assistant Voice 0a1b2c",
                    mac_address=MAC,
                    esphome_version="2026.9.0",
                    compilation_time="Sep 30 2026, 12:00:00",
                    model="esp32s3box",
                    manufacturer="Espressif",
                    project_name="Nabu Casa.Home Assistant Voice PE",
                    project_version="26.9.0",
                    voice_assistant_feature_flags=int(FEATURES),
                )
            )
        elif isinstance(message, pb.ListEntitiesRequest):
            self.send(
                pb.ListEntitiesMediaPlayerResponse(
                    object_id="media_player",
                    key=MEDIA_PLAYER_KEY,
                    name="Media Player",
                    supports_pause=True,
                    supported_formats=[
                        pb.MediaPlayerSupportedFormat(
                            format="flac", sample_rate=48000, num_channels=2, sample_bytes=2
                        ),
                        pb.MediaPlayerSupportedFormat(
                            format="flac",
                            sample_rate=48000,
                            num_channels=1,
                            purpose=pb.MEDIA_PLAYER_FORMAT_PURPOSE_ANNOUNCEMENT,
                            sample_bytes=2,
                        ),
                    ],
                )
            )
            self.send(pb.ListEntitiesDoneResponse())
        elif isinstance(message, pb.SubscribeStatesRequest):
            self._media_state(pb.MEDIA_PLAYER_STATE_IDLE)
        elif isinstance(message, pb.SubscribeVoiceAssistantRequest):
            if message.subscribe:
                self.subscribed.set()
            else:
                self.subscribed.clear()
        elif isinstance(message, pb.VoiceAssistantConfigurationRequest):
            self.send(
                pb.VoiceAssistantConfigurationResponse(
                    available_wake_words=[
                        pb.VoiceAssistantWakeWord(
                            id="okay_nabu", wake_word="Okay Nabu", trained_languages=["en"]
                        )
                    ],
                    active_wake_words=["okay_nabu"],
                    max_active_wake_words=1,
                )
            )
        elif isinstance(message, pb.PingRequest):
            self.send(pb.PingResponse())
        elif isinstance(message, pb.DisconnectRequest):
            self.send(pb.DisconnectResponse())
            return False
        elif isinstance(message, pb.VoiceAssistantResponse):
            if self._started is not None and not self._started.done():
                self._started.set_result(message)
        elif isinstance(message, pb.VoiceAssistantEventResponse):
            self._on_event(message)
        elif isinstance(message, pb.VoiceAssistantAnnounceRequest):
            self._spawn(self._announce(message))
        # Logs, Home Assistant states and services, timers, wake word settings: not needed.
        return True

    def _media_state(self, state: int) -> None:
        self.send(pb.MediaPlayerStateResponse(key=MEDIA_PLAYER_KEY, state=state, volume=0.5))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # The voice assistant ---------------------------------------------------------------------

    async def _listen(self) -> None:
        """START_PIPELINE .. STREAMING_MICROPHONE, then wait for the run (and its reply)."""
        speech = self.next_speech.pop(0) if self.next_speech else b""
        run = self._run = Run()
        self._run_url = ""
        self._continue = False
        self._started = asyncio.get_running_loop().create_future()
        self.send(
            pb.VoiceAssistantRequest(
                start=True,
                conversation_id=self.conversation_id,
                flags=USE_VAD,
                audio_settings=pb.VoiceAssistantAudioSettings(volume_multiplier=1.0),
                wake_word_phrase="Okay Nabu",
            )
        )
        response = await self._started
        if response.error:
            self.runs.put_nowait(run)  # failed_to_start
            return
        silence = bytes(CHUNK_BYTES)
        chunks = [speech[i : i + CHUNK_BYTES] for i in range(0, len(speech), CHUNK_BYTES)]
        for index, chunk in enumerate([*chunks, *[silence] * MAX_SILENCE_CHUNKS]):
            if run.vad_end.is_set() or run.ended.is_set():
                break
            self.send(pb.VoiceAssistantAudio(data=chunk))
            if index == len(chunks) - 1:
                run.speech_ended = asyncio.get_running_loop().time()
            await asyncio.sleep(len(chunk) / 32000)  # the microphone records in real time
        await run.ended.wait()
        if run.playing is not None:
            await run.playing
        self.runs.put_nowait(run)
        if self._continue:
            self.wake()  # RESPONSE_FINISHED with continue_conversation: listen again

    def _on_event(self, message: Event) -> None:
        """`VoiceAssistant::on_event`."""
        data = {item.name: item.value for item in message.data}
        kind = message.event_type
        if (run := self._run) is None:
            return
        run.events.append((kind, data))
        if kind == pb.VOICE_ASSISTANT_RUN_START:
            self._run_url = data.get("url", "")
        elif kind == pb.VOICE_ASSISTANT_STT_VAD_END:
            run.vad_end.set()
        elif kind == pb.VOICE_ASSISTANT_INTENT_PROGRESS:
            if data.get("tts_start_streaming") == "1" and self._run_url:
                self._play_reply(self._run_url)
                self._run_url = ""
        elif kind == pb.VOICE_ASSISTANT_INTENT_END:
            self.conversation_id = data.get("conversation_id", self.conversation_id)
            self._continue = data.get("continue_conversation") == "1"
        elif kind == pb.VOICE_ASSISTANT_TTS_END:
            if run.playing is None and data.get("url"):
                self._play_reply(data["url"])
        elif kind == pb.VOICE_ASSISTANT_RUN_END:
            run.ended.set()

    def _play_reply(self, url: str) -> None:
        run = self._run
        assert run is not None

        async def play() -> None:
            try:
                run.played.append(await self._play(url))
            finally:
                self.send(pb.VoiceAssistantAnnounceFinished(success=True))

        run.playing = asyncio.get_running_loop().create_task(play())

    async def _play(self, url: str) -> Played:
        """The media player fetches a URL (as the firmware's HTTP streamer) and plays it."""
        assert self._http is not None
        # An announcing media player reports PLAYING over the API (api_connection.cpp).
        self._media_state(pb.MEDIA_PLAYER_STATE_PLAYING)
        body = bytearray()
        first = 0.0
        try:
            async with self._http.get(url) as response:
                assert response.status == 200, (url, response.status, await response.text())
                async for chunk in response.content.iter_any():
                    first = first or asyncio.get_running_loop().time()
                    body += chunk
            pcm = await decode(bytes(body))
            # The speaker plays in real time: it is done one duration after the first audio.
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(0.0, first + len(pcm) / 48000 - loop.time()))
        finally:
            self._media_state(pb.MEDIA_PLAYER_STATE_IDLE)
        return Played(url, pcm, first)

    async def _announce(self, message: pb.VoiceAssistantAnnounceRequest) -> None:
        """`VoiceAssistant::on_announce`: the pre-announcement, the media, then maybe listen."""
        announcement = Announcement(message.text, message.start_conversation)
        if message.preannounce_media_id:
            announcement.played.append(await self._play(message.preannounce_media_id))
        announcement.played.append(await self._play(message.media_id))
        self.send(pb.VoiceAssistantAnnounceFinished(success=True))
        self.announcements.put_nowait(announcement)
        if message.start_conversation:
            self.wake()
