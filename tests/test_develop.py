"""`scripts/develop --offline` as a newcomer runs it, twice: on a fresh copy of `config/`, then
on the same (now existing) directory with other ports, with its console captured.

Each start must end with Home Assistant up on the port asked for (with no HTTP configuration
waiting for a confirmation), no repair notice, the demo home's lights in their areas (a config
entry), the integration loaded, the "OpenAI Realtime" assistant using its agent as the
preferred one, and no ERROR line on the console. On the second start the simulator pairs,
turns the kitchen light on by voice, and checks the state with `--expect-state`.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import json
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from simulator.ha import HomeAssistantSocket
from simulator.http import http
from tests.e2e_helpers import DOMAIN, PYTHON, ROOT, allow_sockets, free_port, wait_for

pytestmark = [pytest.mark.usefixtures("socket_enabled"), pytest.mark.timeout(600)]

READY = "==> Home Assistant runs on"
START_TIMEOUT = 240.0
STOP_TIMEOUT = 90.0
CONSOLE_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|^!! ", re.MULTILINE)


class Develop:
    """One `scripts/develop --offline` run in its own process group, its console in a file."""

    def __init__(
        self, config: Path, state_home: Path, console: Path, ports: tuple[int, int]
    ) -> None:
        """Use these (free) ports for Home Assistant and the Realtime server; `start()` runs it."""
        self.config, self.console = config, console
        self.port, self.realtime_port = ports
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "XDG_STATE_HOME": str(state_home)}
        self.env.pop("OPENAI_API_KEY", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until the script says Home Assistant is ready (or fail with why)."""
        with self.console.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(ROOT / "scripts" / "develop"),
                    "--offline",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                    "--realtime-port",
                    str(self.realtime_port),
                ],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while READY not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"scripts/develop exited with {self.proc.returncode}:\n" + self.summary()
                )
            if time.monotonic() > deadline:
                raise AssertionError("scripts/develop not ready in time:\n" + self.summary())
            time.sleep(0.5)

    def output(self) -> str:
        """The console so far."""
        return self.console.read_text(errors="replace")

    def summary(self) -> str:
        """The script's own lines and every warning or error, for failure messages."""
        return "\n".join(
            line
            for line in self.output().splitlines()
            if line.startswith(("==>", "!!")) or re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)
        )

    def stop(self) -> int:
        """Ctrl+C (SIGINT to the script's process group); its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise

    def children(self) -> list[int]:
        """The script's child processes (Home Assistant and the Realtime server among them)."""
        assert self.proc is not None
        listed = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        )
        return [int(pid) for pid in listed.stdout.split()]

    def kill(self) -> None:
        """Make sure nothing of this run is left (after a failure)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        children = self.children()  # in sessions of their own: not in the script's group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.stop()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """A copy of the repository's tracked config/ files, as a fresh checkout has them."""
    config = tmp_path / "config"
    (config / "custom_components").mkdir(parents=True)
    for name in ("configuration.yaml", "scenario.yaml"):
        shutil.copy(ROOT / "config" / name, config / name)
    shutil.copytree(
        ROOT / "config" / "custom_components" / "demo_home",
        config / "custom_components" / "demo_home",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return config


@contextlib.contextmanager
def develop(
    config: Path, state_home: Path, console: Path, ports: tuple[int, int]
) -> Iterator[Develop]:
    """A started run, always stopped afterwards."""
    run = Develop(config, state_home, console, ports)
    try:
        run.start()
        yield run
    finally:
        run.kill()


def ha_token(state_home: Path, run: Develop) -> str:
    """The token scripts/develop keeps for the simulator."""
    state = json.loads((state_home / "openai_realtime_voice" / "simulator.json").read_text())
    return str(state["home_assistant"][run.base_url])


def check_instance(run: Develop, token: str) -> None:
    """What the script promises, read back from Home Assistant itself."""
    with HomeAssistantSocket(run.base_url, token) as ws:
        entities = {e["entity_id"]: e for e in ws.command("config/entity_registry/list")}
        devices = {d["id"]: d for d in ws.command("config/device_registry/list")}
        areas = {a["area_id"]: a["name"] for a in ws.command("config/area_registry/list")}
        for entity_id, room in (
            ("light.kitchen_light", "Kitchen"),
            ("light.living_room_light", "Living Room"),
            ("light.bedroom_light", "Bedroom"),
        ):
            entity = entities[entity_id]
            assert entity["platform"] == "demo_home"
            assert entity["config_entry_id"], f"{entity_id} has no config entry"
            assert areas[devices[entity["device_id"]]["area_id"]] == room
        agent = next(
            e
            for e in entities.values()
            if e["platform"] == DOMAIN and e["entity_id"].startswith("conversation.")
        )
        pipelines = ws.command("assist_pipeline/pipeline/list")
        ours = [p for p in pipelines["pipelines"] if p["name"] == "OpenAI Realtime"]
        assert len(ours) == 1, pipelines
        assert ours[0]["conversation_engine"] == agent["entity_id"]
        assert ours[0]["prefer_local_intents"] is False
        assert pipelines["preferred_pipeline"] == ours[0]["id"]
        issues = [
            (issue["domain"], issue["issue_id"])
            for issue in ws.command("repairs/list_issues")["issues"]
            if not issue.get("dismissed_version")
        ]
        assert issues == [], issues
    entries = http(
        "GET", f"{run.base_url}/api/config/config_entries/entry?domain={DOMAIN}", token=token
    )
    assert [e["state"] for e in entries] == ["loaded"]
    # Brand icons of the custom integrations come from their own `brand/` folders (the brands
    # integration of 2026.10 tries them before its CDN, which a machine offline cannot reach).
    for domain in (DOMAIN, "demo_home"):
        for image in ("icon.png", "dark_icon@2x.png", "logo.png"):
            icon = requests_get(f"{run.base_url}/api/brands/integration/{domain}/{image}", token)
            assert icon.startswith(b"\x89PNG"), (domain, image)
    # Home Assistant runs on the port asked for as its confirmed configuration: nothing pending
    # that would ask "Confirm new HTTP server configuration" and revert with a restart.
    stored = json.loads((run.config / ".storage" / "http").read_text())["data"]
    assert stored["stable"]["server_port"] == run.port
    assert stored["pending"] is None
    demo = http(
        "GET", f"{run.base_url}/api/config/config_entries/entry?domain=demo_home", token=token
    )
    assert [e["state"] for e in demo] == ["loaded"]


def requests_get(url: str, token: str) -> bytes:
    """The raw body of an authenticated GET (an image); the placeholder is not accepted."""
    request = urllib.request.Request(
        url + "?placeholder=no", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}".encode()


def readme_block(after: str) -> list[str]:
    """The first `text` block after the line of README.md containing `after`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rest = text[text.index(after) :]
    block = rest[rest.index("```text\n") + len("```text\n") :]
    return block[: block.index("```")].splitlines()


def shape(lines: list[str]) -> list[str]:
    """Output lines with what changes between runs (addresses, codes, ids, figures) masked."""
    masks = (
        (r"([0-9a-f]{2}:){5}[0-9a-f]{2}", "MAC"),
        (r"session [0-9a-f]+", "session ID"),
        (r"saved to \S+", "saved to FILE"),
        (r"\d+(\.\d+)?", "N"),
    )
    shaped = []
    for line in lines:
        masked = line
        for pattern, replacement in masks:
            masked = re.sub(pattern, replacement, masked)
        shaped.append(masked)
    return shaped


def assert_clean_console(text: str) -> None:
    """No ERROR/CRITICAL line, traceback or failed step anywhere on the console."""
    problems = [line for line in text.splitlines() if CONSOLE_PROBLEM.search(line)]
    assert not problems, "\n".join(problems)


def approve_pairing(run: Develop, token: str, code: str) -> None:
    """Type the code into the discovered device's flow, as the user does in the UI."""

    def discovered() -> list[dict[str, object]]:
        with HomeAssistantSocket(run.base_url, token) as ws:
            flows = ws.command("config_entries/flow/progress")
        return [f for f in flows if f["handler"] == DOMAIN]

    flow = wait_for(discovered, 20, "the discovered device")[0]
    result = http(
        "POST",
        f"{run.base_url}/api/config/config_entries/flow/{flow['flow_id']}",
        token=token,
        body={"code": code},
    )
    assert result["reason"] == "device_paired", result


def test_develop_offline_fresh_then_existing(config_copy: Path, tmp_path: Path) -> None:
    """Fresh config, then the same config on other ports; the simulator turns the light on."""
    allow_sockets()
    state_home = tmp_path / "state"
    with develop(
        config_copy, state_home, tmp_path / "console-1.txt", (free_port(), free_port())
    ) as first:
        token = ha_token(state_home, first)
        check_instance(first, token)
        assert "created the owner 'dev'" in first.output()
        first.stop()
    assert_clean_console(first.output())

    # `--port` and `--realtime-port` changed: Home Assistant follows, and so does the entry.
    ports = (free_port(), free_port())
    while set(ports) & {first.port, first.realtime_port}:
        ports = (free_port(), free_port())
    with develop(config_copy, state_home, tmp_path / "console-2.txt", ports) as second:
        assert "already configured" in second.output()
        assert f"==> Home Assistant's HTTP port: {first.port} -> {second.port}" in second.output()
        assert (
            f"==> moved OpenAI Realtime Voice from http://127.0.0.1:{first.realtime_port}/v1 "
            f"to http://127.0.0.1:{second.realtime_port}/v1"
        ) in second.output()
        token = ha_token(state_home, second)
        check_instance(second, token)
        assert (
            http("GET", f"{second.base_url}/api/states/light.kitchen_light", token=token)["state"]
            == "off"
        )
        report = tmp_path / "report.json"
        sim = subprocess.Popen(
            [
                str(PYTHON),
                "-m",
                "simulator",
                "--ota-url",
                f"{second.base_url}/api/openai_realtime_voice/ota/",
                "--state",
                str(state_home / "openai_realtime_voice" / "simulator.json"),
                "--pair-timeout",
                "60",
                "--say",
                "Turn on the kitchen light",
                "--expect-state",
                "light.kitchen_light=on",
                "--out",
                str(tmp_path / "reply.wav"),
                "--report",
                str(report),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        try:
            assert sim.stdout is not None
            for line in sim.stdout:
                lines.append(line.rstrip("\n"))
                if match := re.search(r"pairing code: (\d+)", line):
                    approve_pairing(second, token, match.group(1))
            assert sim.wait(timeout=120) == 0, "\n".join(lines)
        finally:
            if sim.poll() is None:
                sim.kill()
                sim.wait()
        output = "\n".join(lines)
        seen = json.loads(report.read_text())
        assert seen["tts"] == ["The kitchen light is on."], output
        assert [(c["name"], c["ok"]) for c in seen["tool_calls"]] == [
            ("intent__HassTurnOn", True)
        ], output
        assert seen["states"] == [
            {"entity_id": "light.kitchen_light", "expected": "on", "state": "on", "ok": True}
        ]
        assert "state: light.kitchen_light is on (as expected)" in output
        assert shape(output.splitlines()) == shape(readme_block("scripts/simulate --say"))
        assert (
            http("GET", f"{second.base_url}/api/states/light.kitchen_light", token=token)["state"]
            == "on"
        )
        second.stop()
    assert_clean_console(second.output())
