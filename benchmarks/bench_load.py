"""Load benchmark: N simulated devices speaking at once through Home Assistant.

    python -m benchmarks.bench_load [--devices 10 25 50] [--turns 3] [--server-delay-ms 50]

Three processes on 127.0.0.1: this one runs Home Assistant (set up the way the tests do,
with the integration and one paired device subentry per simulated device) plus an event
loop lag probe; a child runs the local Realtime server; another child runs the device
simulators, so their CPU is not counted as Home Assistant's.

Each device talks push-to-talk: ~1 s of speech paced at 60 ms, `listen stop` (end of speech),
then the reply. The server waits `--server-delay-ms` before it answers each `response.create`,
so the latency the integration adds is `first reply frame at the device - end of speech -
server delay` (the network hops and the server's own work are counted against us).
An idle Home Assistant is measured in the same run as the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import itertools
import json
import math
import multiprocessing as mp
from multiprocessing.connection import Connection
from pathlib import Path
import random
import secrets
import sys
import tempfile
import time
from typing import Any

RESULTS = Path(__file__).parent / "results"
FRAME_MS = 60
PREBUFFER_FRAMES = 5  # sent at once when a reply starts (see audio/pacing.py)
GOAL_LAG_P99_MS = 20.0
GOAL_ADDED_P95_MS = 30.0
PROBE_INTERVAL = 0.01
API_KEY = "sk-bench-load"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# --- the Realtime server process ----------------------------------------------------------------


def serve_realtime(port: int, delay_ms: float, reply_ms: int, stop: Any) -> None:
    """Child process: the local Realtime server, answering after a fixed delay."""
    asyncio.run(_serve_realtime(port, delay_ms, reply_ms, stop))


async def _serve_realtime(port: int, delay_ms: float, reply_ms: int, stop: Any) -> None:
    from realtime_server import RealtimeServer, ScriptedResponse, tone

    class Server(RealtimeServer):
        """The test server without its SDK validation (the stand-in's CPU is not measured)."""

        async def send(self, event: dict[str, Any], **kwargs: Any) -> None:
            await super().send(event, **kwargs, validate=False)

        async def _receive(self, session: Any, raw: str | bytes) -> None:
            event = json.loads(raw)
            hook = self.hooks.get(event["type"])
            if hook is not None and await hook(event):
                return
            await session.handle(event)

    server = Server(api_key=API_KEY, port=port)
    audio = tone(reply_ms)

    async def delayed(event: dict[str, Any]) -> None:
        server.script(ScriptedResponse(text="Sure, here you are.", audio=audio, chunks=6))
        await asyncio.sleep(delay_ms / 1000)

    server.hooks["response.create"] = delayed
    await server.start()
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    await server.stop()


# --- the device simulator process ---------------------------------------------------------------


@dataclass(frozen=True)
class DeviceSpec:
    """What a simulated device needs to connect without pairing again."""

    mac: str
    client_id: str
    token: str


def run_devices(url: str, specs: list[DeviceSpec], turns: int, pipe: Connection) -> None:
    """Child process: connect every device, wait for 'go', speak, send the measurements back."""
    try:
        asyncio.run(_run_devices(url, specs, turns, pipe))
    except Exception as err:
        pipe.send(f"error: {err!r}")
        raise


async def _run_devices(url: str, specs: list[DeviceSpec], turns: int, pipe: Connection) -> None:
    import numpy as np

    from custom_components.openai_realtime_voice.xiaozhi import ListenMode
    from simulator.device import DeviceSimulator

    rate = 16000
    t = np.arange(rate) / rate
    speech = (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()
    devices = [
        DeviceSimulator(
            ws_url=url,
            token=spec.token,
            mac=spec.mac,
            client_id=spec.client_id,
            default_mode=ListenMode.MANUAL,
        )
        for spec in specs
    ]
    await asyncio.gather(*(device.open_audio_channel() for device in devices))
    loop = asyncio.get_running_loop()
    pipe.send("connected")
    await loop.run_in_executor(None, pipe.recv)  # "go"
    latencies: list[float] = []
    jitter: list[float] = []
    failures = 0

    async def speak(device: DeviceSimulator) -> None:
        nonlocal failures
        await asyncio.sleep(random.uniform(0, 0.5))
        for _ in range(turns):
            if not device.mic_active:  # the first press listens from the hello on
                await device.start_listening(ListenMode.MANUAL)
            await device.send_audio(speech, realtime=True)
            first = len(device.playback.downlink)
            start = len(device.messages)
            await device.stop_listening()
            ended = loop.time()
            try:
                async with asyncio.timeout(15):
                    await device.wait_for_message(
                        lambda m: m["type"] == "tts" and m["state"] == "stop", start=start
                    )
            except TimeoutError:
                failures += 1
                continue
            played = [p for p in device.playback.downlink[first:] if p.outcome == "played"]
            if not played:
                failures += 1
                continue
            latencies.append((played[0].arrival - ended) * 1000)
            times = [p.arrival for p in played]
            jitter.extend(
                abs((b - a) * 1000 - FRAME_MS)
                for a, b in itertools.pairwise(times[PREBUFFER_FRAMES:])
            )
            await asyncio.sleep(random.uniform(0.1, 0.4))

    probe = LagProbe()
    probe.start()
    began, cpu = loop.time(), time.process_time()
    await asyncio.gather(*(speak(device) for device in devices))
    wall, cpu = loop.time() - began, time.process_time() - cpu
    lag = probe.stop()
    await asyncio.gather(*(device.close() for device in devices))
    pipe.send(
        {
            "latencies": latencies,
            "jitter": jitter,
            "failures": failures,
            "sim_cpu": cpu / wall * 100,
            "sim_lag_p99": percentile(lag, 99),
        }
    )


# --- Home Assistant (this process) --------------------------------------------------------------


class LagProbe:
    """Schedule `call_later` ticks and record how late each one runs (event loop lag)."""

    def __init__(self) -> None:
        """Not running until `start()`."""
        self.samples: list[float] = []
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Begin ticking every `PROBE_INTERVAL` seconds."""
        self.samples.clear()
        self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + PROBE_INTERVAL
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        self.samples.append((asyncio.get_running_loop().time() - self._due) * 1000)
        self._schedule()

    def stop(self) -> list[float]:
        """Stop ticking; return the lateness samples in ms."""
        if self._handle is not None:
            self._handle.cancel()
        return list(self.samples)


@dataclass
class Row:
    """One line of the results table."""

    devices: int
    cpu_per_device: float  # % of one core
    cpu_total: float  # % of one core
    lag_p50: float
    lag_p99: float
    jitter_p50: float
    jitter_p99: float
    added_p50: float
    added_p95: float
    turns: int
    failures: int
    sim_cpu: float = math.nan  # the simulator process, % of one core
    sim_lag_p99: float = math.nan  # the simulator process's own loop lag (inflates arrivals)


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def connected_bridges(hass: Any, specs: Sequence[DeviceSpec]) -> int:
    """How many of these devices have a bridge with a configured Realtime session."""
    from custom_components.openai_realtime_voice.bridge import serving
    from custom_components.openai_realtime_voice.models import find_home

    count = 0
    for spec in specs:
        found = find_home(hass, spec.mac)
        bridge = serving(found[1]) if found is not None else None
        if bridge is not None and bridge.client is not None and bridge.client.connected:
            count += 1
    return count


async def wait_until(predicate: Any, seconds: float) -> None:
    """Poll an async predicate until it holds (Home Assistant state has no event for it)."""
    async with asyncio.timeout(seconds):
        while not await predicate():  # noqa: ASYNC110 - polled state, nothing to await
            await asyncio.sleep(0.05)


async def measure(
    hass: Any, url: str, specs: list[DeviceSpec], turns: int, idle_seconds: float
) -> Row:
    """Run the devices (or, with none, idle for `idle_seconds`) and measure HA meanwhile."""
    loop = asyncio.get_running_loop()
    probe = LagProbe()
    result: dict[str, Any] = {"latencies": [], "jitter": [], "failures": 0}
    process = None
    if specs:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        process = ctx.Process(target=run_devices, args=(url, specs, turns, child), daemon=True)
        process.start()
        if await loop.run_in_executor(None, parent.recv) != "connected":
            raise RuntimeError("the simulators did not connect")

        async def all_connected() -> bool:
            return await connected_bridges(hass, specs) == len(specs)

        await wait_until(all_connected, 60)
    await asyncio.sleep(0.5)
    cpu0, wall0 = time.process_time(), loop.time()
    probe.start()
    if process is not None:
        parent.send("go")
        result = await loop.run_in_executor(None, parent.recv)
        if not isinstance(result, dict):
            raise RuntimeError(f"the simulators failed: {result}")
    else:
        await asyncio.sleep(idle_seconds)
    lag = probe.stop()
    cpu, wall = time.process_time() - cpu0, loop.time() - wall0
    if process is not None:
        await loop.run_in_executor(None, process.join, 30)

        async def all_gone() -> bool:
            return await connected_bridges(hass, specs) == 0

        await wait_until(all_gone, 30)
    devices = len(specs)
    latencies = result["latencies"]
    return Row(
        devices=devices,
        cpu_per_device=cpu / wall / devices * 100 if devices else math.nan,
        cpu_total=cpu / wall * 100,
        lag_p50=percentile(lag, 50),
        lag_p99=percentile(lag, 99),
        jitter_p50=percentile(result["jitter"], 50),
        jitter_p99=percentile(result["jitter"], 99),
        added_p50=percentile(latencies, 50) - SERVER_DELAY_MS[0],
        added_p95=percentile(latencies, 95) - SERVER_DELAY_MS[0],
        turns=len(latencies),
        failures=result["failures"],
        sim_cpu=result.get("sim_cpu", math.nan),
        sim_lag_p99=result.get("sim_lag_p99", math.nan),
    )


SERVER_DELAY_MS = [50.0]


async def bench(counts: list[int], turns: int, delay_ms: float, reply_ms: int) -> list[Row]:
    """Start the server and Home Assistant, then measure idle and each device count."""
    import aiohttp.test_utils
    from homeassistant import loader
    from homeassistant.config_entries import ConfigSubentryData
    from homeassistant.const import CONF_API_KEY
    from homeassistant.setup import async_setup_component
    from pytest_homeassistant_custom_component.common import (
        MockConfigEntry,
        async_test_home_assistant,
    )

    from custom_components.openai_realtime_voice.const import (
        CONF_BASE_URL,
        CONF_BOARD,
        CONF_CLIENT_ID,
        CONF_DIALECT,
        CONF_FIRMWARE,
        CONF_MAC,
        CONF_TOKEN_HASH,
        DEVICE_WS_PATH,
        DOMAIN,
        SUBENTRY_DEVICE,
    )
    from custom_components.openai_realtime_voice.endpoint.pairing import hash_token
    from custom_components.openai_realtime_voice.settings import default_options

    SERVER_DELAY_MS[0] = delay_ms
    specs = [
        DeviceSpec(
            mac=":".join(f"{b:02x}" for b in (0x02, 0, 0, 0, i // 256, i % 256)),
            client_id=f"bench-{i}",
            token=secrets.token_urlsafe(32),
        )
        for i in range(max(counts))
    ]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    port = free_port()
    server = ctx.Process(target=serve_realtime, args=(port, delay_ms, reply_ms, stop), daemon=True)
    server.start()
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory() as config_dir:
            async with async_test_home_assistant(config_dir=config_dir) as hass:
                hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)
                for domain, config in (
                    ("homeassistant", {}),
                    ("http", {"http": {"server_host": "127.0.0.1"}}),
                    ("intent", {}),
                    ("conversation", {}),
                ):
                    assert await async_setup_component(hass, domain, config)
                entry = MockConfigEntry(
                    domain=DOMAIN,
                    data={
                        CONF_API_KEY: API_KEY,
                        CONF_BASE_URL: f"http://127.0.0.1:{port}/v1",
                        CONF_DIALECT: "ga",
                    },
                    options=default_options(),
                    subentries_data=[
                        ConfigSubentryData(
                            data={
                                CONF_MAC: spec.mac,
                                CONF_CLIENT_ID: spec.client_id,
                                CONF_BOARD: "bench",
                                CONF_FIRMWARE: "2.4.2",
                                CONF_TOKEN_HASH: hash_token(spec.token),
                            },
                            subentry_type=SUBENTRY_DEVICE,
                            title=f"bench ({spec.mac})",
                            unique_id=spec.mac,
                        )
                        for spec in specs
                    ],
                )
                entry.add_to_hass(hass)
                for _ in range(100):  # the server process may still be starting
                    if await hass.config_entries.async_setup(entry.entry_id):
                        break
                    await asyncio.sleep(0.2)
                    await hass.config_entries.async_unload(entry.entry_id)
                else:
                    raise RuntimeError("the integration did not load")
                await hass.async_block_till_done()
                web = aiohttp.test_utils.TestServer(hass.http.app, host="127.0.0.1", port=0)
                await web.start_server()
                url = f"ws://127.0.0.1:{web.port}{DEVICE_WS_PATH}"
                try:
                    rows.append(await measure(hass, url, [], turns, 8.0))
                    print(format_row(rows[-1]), flush=True)
                    for count in counts:
                        rows.append(await measure(hass, url, specs[:count], turns, 0))
                        print(format_row(rows[-1]), flush=True)
                finally:
                    await web.close()
                    await hass.config_entries.async_unload(entry.entry_id)
    finally:
        stop.set()
        server.join(10)
    return rows


HEADER = (
    "devices  CPU/device  CPU total  lag p50  lag p99  jitter p50  jitter p99"
    "  added p50  added p95  turns  failed"
)


def format_row(row: Row) -> str:
    """One table line (CPU in % of one core, times in ms)."""
    name = "idle" if row.devices == 0 else str(row.devices)
    per_device = "-" if row.devices == 0 else f"{row.cpu_per_device:9.2f}%"
    return (
        f"{name:>7}  {per_device:>10}  {row.cpu_total:8.1f}%"
        f"  {row.lag_p50:7.2f}  {row.lag_p99:7.2f}"
        f"  {row.jitter_p50:10.2f}  {row.jitter_p99:10.2f}  {row.added_p50:9.1f}"
        f"  {row.added_p95:9.1f}  {row.turns:5d}  {row.failures:6d}"
    )


def verdicts(rows: list[Row]) -> list[str]:
    """PASS/MISS lines for the goals, at the largest device count."""
    top = max(rows, key=lambda row: row.devices)
    idle = next(row for row in rows if row.devices == 0)
    lag = "PASS" if top.lag_p99 < GOAL_LAG_P99_MS else "MISS"
    added = "PASS" if top.added_p95 < GOAL_ADDED_P95_MS else "MISS"
    answered = "PASS" if top.failures == 0 else "MISS"
    return [
        (
            f"{lag}  {top.devices} devices: loop lag p99 {top.lag_p99:.2f} ms"
            f" < {GOAL_LAG_P99_MS:g} ms (idle {idle.lag_p99:.2f} ms)"
        ),
        (
            f"{added}  {top.devices} devices: added latency p95 {top.added_p95:.1f} ms"
            f" < {GOAL_ADDED_P95_MS:g} ms"
        ),
        (
            f"{answered}  {top.devices} devices: every turn answered"
            f" ({top.turns} turns, {top.failures} failed)"
        ),
    ]


def plot(rows: list[Row], path: Path) -> None:
    """The scale curve: CPU, loop lag and added latency against the device count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = [row for row in rows if row.devices]
    idle = next(row for row in rows if row.devices == 0)
    counts = [row.devices for row in loaded]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    axes[0].plot(counts, [row.cpu_total for row in loaded], "o-", label="with devices")
    axes[0].axhline(idle.cpu_total, color="grey", linestyle=":", label="idle HA")
    axes[0].set(title="Home Assistant CPU", xlabel="devices", ylabel="% of one core")
    axes[1].plot(counts, [row.lag_p50 for row in loaded], "o-", label="p50")
    axes[1].plot(counts, [row.lag_p99 for row in loaded], "s-", label="p99")
    axes[1].axhline(GOAL_LAG_P99_MS, color="red", linestyle="--", label="goal p99")
    axes[1].axhline(idle.lag_p99, color="grey", linestyle=":", label="idle p99")
    axes[1].set(title="Event loop lag", xlabel="devices", ylabel="ms")
    axes[2].plot(counts, [row.added_p50 for row in loaded], "o-", label="p50")
    axes[2].plot(counts, [row.added_p95 for row in loaded], "s-", label="p95")
    axes[2].axhline(GOAL_ADDED_P95_MS, color="red", linestyle="--", label="goal p95")
    axes[2].set(title="Latency added (end of speech -> first frame)", xlabel="devices", ylabel="ms")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        axis.set_ylim(bottom=0)
    fig.suptitle("Simulated devices speaking at once (2-core machine, all on 127.0.0.1)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run, print the table and verdicts, write the PNG; exit 1 when a goal is missed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_load", description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--turns", type=int, default=3, help="turns per device")
    parser.add_argument("--server-delay-ms", type=float, default=50.0)
    parser.add_argument("--reply-ms", type=int, default=900, help="reply audio length")
    parser.add_argument("--out", type=Path, default=RESULTS / "load_scale.png")
    args = parser.parse_args(argv)
    print(HEADER, flush=True)
    rows = asyncio.run(bench(args.devices, args.turns, args.server_delay_ms, args.reply_ms))
    print()
    for row in rows[1:]:
        print(
            f"simulators ({row.devices} devices, own process): CPU {row.sim_cpu:.0f}% of a core, "
            f"loop lag p99 {row.sim_lag_p99:.1f} ms (counted in jitter and added latency)"
        )
    print()
    lines = verdicts(rows)
    for line in lines:
        print(line)
    plot(rows, args.out)
    print(f"scale curve: {args.out}")
    return 0 if all(line.startswith("PASS") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
