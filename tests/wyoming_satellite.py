"""A Wyoming satellite in the test process, as a Raspberry Pi running wyoming-satellite is.

Home Assistant's `wyoming` integration connects to it, asks who it is (Describe -> Info), and
tells it to run (RunSatellite). The satellite then asks for pipeline runs, streams its
microphone (AudioChunk, 16 kHz) and plays what it is sent back (AudioStart, AudioChunk,
AudioStop), saying when it is done (Played), as wyoming-satellite's `satellite.py` does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, Describe, Info, Satellite
from wyoming.ping import Ping, Pong
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.satellite import RunSatellite
from wyoming.server import AsyncEventHandler, AsyncTcpServer
from wyoming.snd import Played

INFO = Info(
    satellite=Satellite(
        name="Kitchen satellite",
        attribution=Attribution(name="tests", url=""),
        installed=True,
        description="A Wyoming satellite in the test process",
        version="1.0",
        area="Kitchen",
    )
)
CHUNK_SAMPLES = 1024


@dataclass
class Reply:
    """What the satellite played of one pipeline run."""

    rate: int
    pcm: bytes
    first_audio: float
    """When the first audio chunk arrived (the loop's clock)."""
    events: list[str] = field(default_factory=list)


class WyomingSatellite:
    """The satellite: serves Home Assistant's connections, speaks and listens on demand."""

    def __init__(self, port: int) -> None:
        """Listen on 127.0.0.1:`port` once started."""
        self.port = port
        self.server = AsyncTcpServer("127.0.0.1", port)
        self.running = asyncio.Event()
        self.events: asyncio.Queue[tuple[float, Event]] = asyncio.Queue()
        """What Home Assistant sent, with when it arrived (the loop's clock)."""
        self._handler: _Handler | None = None

    async def start(self) -> None:
        """Accept Home Assistant's connections."""
        await self.server.start(lambda reader, writer: _Handler(self, reader, writer))

    async def stop(self) -> None:
        """Close every connection."""
        await self.server.stop()

    async def speak(self, pcm_16k: bytes, *, realtime: bool = False) -> float:
        """The user speaks after the wake word: a pipeline run from speech to speech.

        The satellite's own VAD ends the speech (AudioStop); returns when it did. With
        `realtime` the microphone's chunks go out at the pace they are recorded.
        """
        handler = self._handler
        assert handler is not None
        await handler.write_event(
            RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event()
        )
        await handler.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        step = CHUNK_SAMPLES * 2
        for start in range(0, len(pcm_16k), step):
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm_16k[start : start + step])
            await handler.write_event(chunk.event())
            if realtime:
                await asyncio.sleep(chunk.seconds)  # the microphone records in real time
        ended = asyncio.get_running_loop().time()
        await handler.write_event(AudioStop().event())
        return ended

    async def reply(self) -> Reply:
        """Play what Home Assistant sends back, up to its AudioStop; say it was played."""
        seen: list[str] = []
        rate = 0
        first = 0.0
        pcm = bytearray()
        while True:
            arrived, event = await self.events.get()
            seen.append(event.type)
            if AudioStart.is_type(event.type):
                rate = AudioStart.from_event(event).rate
            elif AudioChunk.is_type(event.type):
                first = first or arrived
                pcm += AudioChunk.from_event(event).audio
            elif AudioStop.is_type(event.type):
                assert self._handler is not None
                await self._handler.write_event(Played().event())
                return Reply(rate, bytes(pcm), first, seen)

    async def next_of(self, kind: str) -> Event:
        """The next event of a type Home Assistant sends."""
        while True:
            _, event = await self.events.get()
            if event.type == kind:
                return event


class _Handler(AsyncEventHandler):
    """One connection from Home Assistant (the info probe, or the satellite entity's)."""

    def __init__(
        self,
        satellite: WyomingSatellite,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(reader, writer)
        self.satellite = satellite

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(INFO.event())
        elif RunSatellite.is_type(event.type):
            self.satellite._handler = self
            self.satellite.running.set()
        elif Ping.is_type(event.type):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        else:
            arrived = asyncio.get_running_loop().time()
            self.satellite.events.put_nowait((arrived, event))
        return True
