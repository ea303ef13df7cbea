"""Real processes for the end-to-end and browser tests: Home Assistant, the local Realtime
server in scenario mode, and the device simulator, all on 127.0.0.1.

Everything here is synchronous (subprocesses and `urllib`), so the tests need no event loop
and exercise exactly the commands a user runs.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import re
import signal
import socket
import subprocess
import time
from typing import Any

from homeassistant.components.http.config import (
    HTTP_STORAGE_SCHEMA,
    STORAGE_MINOR_VERSION as HTTP_STORAGE_MINOR_VERSION,
    STORAGE_VERSION as HTTP_STORAGE_VERSION,
)
import pytest_socket
from websockets.sync.client import connect

from simulator.devsetup import prepare
from simulator.http import http

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
HASS = ROOT / ".venv" / "bin" / "hass"
SCENARIO = ROOT / "config" / "scenario.yaml"
DOMAIN = "openai_realtime_voice"
OWNER = {"name": "Test Owner", "username": "owner", "password": "e2e-password-1"}
OFFLINE_KEY = "offline"

STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def allow_sockets() -> None:
    """Let this process open sockets (phcc blocks them outside `socket_enabled` tests)."""
    pytest_socket.enable_socket()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy (exceptions count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := predicate():
                return result
        except (OSError, ValueError) as err:  # HttpError is an OSError
            last = err
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


CONFIGURATION = """\
homeassistant:
  name: End to end
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: Europe/Amsterdam
  country: NL
  currency: EUR
  internal_url: "http://127.0.0.1:{port}"

http:
  server_host: 127.0.0.1
  server_port: {port}

api:
config:
onboarding:
conversation:
{extra}
demo_home:

logger:
  default: warning
  logs:
    custom_components.openai_realtime_voice: debug
    homeassistant.components.http: info
"""


@dataclass
class RealtimeProcess:
    """`python -m realtime_server --scenario config/scenario.yaml` on a free port."""

    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """The base URL to configure in the integration."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, log: Path) -> None:
        """Start it and wait until it listens (the scenario speech is synthesised first)."""
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [
                str(PYTHON),
                "-m",
                "realtime_server",
                "--port",
                str(self.port),
                "--scenario",
                str(SCENARIO),
                "--api-key",
                OFFLINE_KEY,
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: self._listening(log), 30, "the Realtime server")

    def _listening(self, log: Path) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the Realtime server exited with {self.proc.returncode}")
        return "Realtime server on" in log.read_text()

    def stop(self) -> int | None:
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._log.close()


def store_http_config(config_dir: Path, port: int) -> None:
    """Home Assistant's HTTP settings as its UI stores them (`.storage/http`, confirmed), bound
    to 127.0.0.1 on `port`."""
    stable = {
        **HTTP_STORAGE_SCHEMA({"server_host": ["127.0.0.1"], "server_port": port}),
        "created_at": "2026-01-01T00:00:00+00:00",
        "error": None,
        "error_message": None,
    }
    storage = config_dir / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "http").write_text(
        json.dumps(
            {
                "version": HTTP_STORAGE_VERSION,
                "minor_version": HTTP_STORAGE_MINOR_VERSION,
                "key": "http",
                "data": {"stable": stable, "pending": None, "yaml_migration_done": True},
            }
        )
    )


class HomeAssistantProcess:
    """`hass -c <tmp>` with the demo home and this integration, onboarded through REST."""

    def __init__(self, config_dir: Path, *, frontend: bool = False) -> None:
        """Write the configuration; `start()` runs it."""
        self.config_dir = config_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_file = config_dir / "home-assistant.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.client_id = self.base_url + "/"
        components = config_dir / "custom_components"
        components.mkdir(parents=True, exist_ok=True)
        (components / DOMAIN).symlink_to(ROOT / "custom_components" / DOMAIN)
        (components / "demo_home").symlink_to(ROOT / "config" / "custom_components" / "demo_home")
        extra = "frontend:\nsearch:\n" if frontend else ""
        configuration = CONFIGURATION.format(port=self.port, extra=extra)
        self.prepared = frontend
        if frontend:
            # What the UI shows must be what a user sees: no "Confirm new HTTP server
            # configuration" dialog (HTTP settings stored as the UI stores them, not YAML) and
            # no integrations onboarding's location step adds that fail offline (Google
            # Translate showed "Failed to set up" in the screenshots).
            configuration = configuration.replace(
                f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n", ""
            )
            store_http_config(config_dir, self.port)
            prepare(config_dir)
        (config_dir / "configuration.yaml").write_text(configuration)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the process and wait until the HTTP API answers."""
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [str(HASS), "-c", str(self.config_dir), "--skip-pip", "--log-file", str(self.log_file)],
            cwd=self.config_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        wait_for(self._up, STARTUP_TIMEOUT, "Home Assistant to answer", interval=0.25)

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"hass exited with {self.proc.returncode}:\n{self.log_tail()}")
        return isinstance(http("GET", self.url("/api/onboarding")), list)

    def stop(self) -> int:
        """SIGTERM, wait for a clean exit; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        """Make sure the process is gone (teardown after a failure)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log, for failure messages."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text().splitlines()[-lines:])
        return ""

    def our_problems(self) -> list[str]:
        """ERROR/CRITICAL records of our loggers, and any traceback through our code."""
        text = self.log_file.read_text() if self.log_file.exists() else ""
        records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
        ours = re.compile(
            r"^\S+ \S+ (ERROR|CRITICAL) \(\S+\) \[custom_components\.openai_realtime_voice"
        )
        return [
            record
            for record in records
            if ours.match(record)
            or ("Traceback" in record and "custom_components/openai_realtime_voice/" in record)
        ]

    # --- REST -----------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """An absolute URL on this instance."""
        return self.base_url + path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """An authenticated REST call."""
        return http(method, self.url(path), token=self.token, body=body)

    def onboard(self, *, finish: bool = False) -> None:
        """Create the owner and a long-lived token; `finish` also completes onboarding.

        Finishing onboarding (needed before the UI shows anything else) sets up Home
        Assistant's default integrations, some of which log import errors here.
        """
        created = http(
            "POST",
            self.url("/api/onboarding/users"),
            body={**OWNER, "client_id": self.client_id, "language": "en"},
        )
        tokens = http(
            "POST",
            self.url("/auth/token"),
            form={
                "grant_type": "authorization_code",
                "code": created["auth_code"],
                "client_id": self.client_id,
            },
        )
        self.token = tokens["access_token"]
        if finish:
            if not self.prepared:  # else done before the start, without their integrations
                self.api("POST", "/api/onboarding/core_config")
                self.api("POST", "/api/onboarding/analytics")
            self.api(
                "POST",
                "/api/onboarding/integration",
                {"client_id": self.client_id, "redirect_uri": self.client_id + "?auth_callback=1"},
            )
        self.token = long_lived_token(self.port, self.token)

    def state(self, entity_id: str) -> str:
        """The state of one entity."""
        return str(self.api("GET", f"/api/states/{entity_id}")["state"])

    def states(self, prefix: str) -> list[dict[str, Any]]:
        """Every state whose entity id starts with `prefix`."""
        return [s for s in self.api("GET", "/api/states") if s["entity_id"].startswith(prefix)]

    def add_entry(self, base_url: str, api_key: str = OFFLINE_KEY) -> dict[str, Any]:
        """Complete our config flow through the REST flow API; returns the final result."""
        flow = self.api(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": DOMAIN, "show_advanced_options": False},
        )
        assert flow["type"] == "form", flow
        assert flow["step_id"] == "user", flow
        return self.api(
            "POST",
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"api_key": api_key, "base_url": base_url, "dialect": "ga"},
        )

    def flows_in_progress(self) -> list[dict[str, Any]]:
        """Config flows waiting for the user (discovered devices among them)."""
        flows: list[dict[str, Any]] = ws_command(
            self.port, self.token, {"type": "config_entries/flow/progress"}
        )
        return flows


def ws_command(port: int, token: str, command: dict[str, Any]) -> Any:
    """Run one WebSocket API command (a tiny synchronous client); returns its result."""
    # No keepalive pings: their thread can outlive the block and fail the thread check.
    with connect(f"ws://127.0.0.1:{port}/api/websocket", open_timeout=10, ping_interval=None) as ws:
        assert json.loads(ws.recv(10))["type"] == "auth_required"
        ws.send(json.dumps({"type": "auth", "access_token": token}))
        assert json.loads(ws.recv(10))["type"] == "auth_ok"
        ws.send(json.dumps({"id": 1, **command}))
        reply = json.loads(ws.recv(10))
    assert reply.get("success"), reply
    return reply["result"]


def long_lived_token(port: int, access_token: str) -> str:
    """Mint a long-lived access token for the REST calls."""
    command = {
        "type": "auth/long_lived_access_token",
        "client_name": "end-to-end tests",
        "lifespan": 1,
    }
    return str(ws_command(port, access_token, command))


@dataclass
class SimulatorRun:
    """A running `python -m simulator` and what it printed."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def read_until(self, pattern: str) -> re.Match[str]:
        """Read printed lines until one matches (the simulator's own timeouts bound this)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"simulator ended without {pattern!r}:\n" + "\n".join(self.lines))

    def finish(self, timeout: float = 90) -> int:
        """Read the rest of the output and wait for the exit status."""
        assert self.proc.stdout is not None
        self.lines += [line.rstrip("\n") for line in self.proc.stdout]
        return self.proc.wait(timeout=timeout)

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)


def start_simulator(ha: HomeAssistantProcess, state_file: Path, *args: str) -> SimulatorRun:
    """`python -m simulator` against `ha`, keeping the device identity in `state_file`."""
    proc = subprocess.Popen(
        [
            str(PYTHON),
            "-m",
            "simulator",
            "--ota-url",
            ha.url("/api/openai_realtime_voice/ota/"),
            "--state",
            str(state_file),
            "--pair-timeout",
            "60",
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return SimulatorRun(proc)


@contextlib.contextmanager
def running(ha: HomeAssistantProcess, *, finish: bool = False) -> Iterator[HomeAssistantProcess]:
    """Start and onboard `ha`; always make sure it is gone afterwards."""
    try:
        ha.start()
        ha.onboard(finish=finish)
        wait_for(
            lambda: ha.api("GET", "/api/config")["state"] == "RUNNING",
            STARTUP_TIMEOUT,
            "Home Assistant to finish starting",
        )
        yield ha
    finally:
        ha.kill()
