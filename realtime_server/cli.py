"""The command line: `python -m realtime_server [--port N] [--scenario FILE] [--api-key KEY]`.

`scripts/develop` runs it with `config/scenario.yaml` for the offline demo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from pathlib import Path
import signal
import sys

from .scenario import Scenario, ScenarioError
from .server import RealtimeServer


async def serve_forever(args: argparse.Namespace) -> None:
    """Run the server (with the scenario, if given) until SIGINT or SIGTERM."""
    scenario = await Scenario.load(Path(args.scenario)) if args.scenario else None
    server = RealtimeServer(api_key=args.api_key, port=args.port, scenario=scenario)
    await server.start()
    print(f"Realtime server on {server.url} (API key {args.api_key!r})", flush=True)  # noqa: T201
    if scenario is not None:
        print(f"scenario {args.scenario}: {len(scenario.rules)} rules", flush=True)  # noqa: T201
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await stop.wait()
            news = (scenario.log if scenario else [])[shown:] + server.violations
            shown += len(news) - len(server.violations)
            for line in news:
                print(line, flush=True)  # noqa: T201
            server.violations.clear()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m realtime_server [--port N] [--scenario FILE] [--api-key KEY]`."""
    parser = argparse.ArgumentParser(
        prog="python -m realtime_server",
        description="A local stand-in for the OpenAI Realtime service on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default: %(default)s)")
    parser.add_argument("--scenario", help="a YAML scenario (see config/scenario.yaml)")
    parser.add_argument(
        "--api-key", default="offline", help="the key clients must send (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve_forever(args))
    except ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201
        return 1
    except OSError as err:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {err}", file=sys.stderr)  # noqa: T201
        return 1
    return 0
