"""Prepare and check a development Home Assistant for `scripts/develop`.

`prepare --config DIR --port N` runs before Home Assistant starts: on a fresh configuration
directory it marks onboarding's location and analytics steps as done, so onboarding does not add
Met, Radio Browser, Google Translate and the shopping list (they need the internet and log errors
without it); the owner is still created through onboarding. It also keeps Home Assistant's
stored HTTP configuration on port N (see `keep_http_port`) and, with `--offline URL`, moves an
entry made for the local Realtime server on another port to URL (see `follow_offline_server`).

`setup` runs while Home Assistant starts: it finishes onboarding with the development owner
(dev / dev, printed), adds the OpenAI Realtime Voice entry through the REST config flow (against
the local Realtime server with `--offline`, else with `OPENAI_API_KEY` when set), makes an Assist
assistant "OpenAI Realtime" that uses the entry's agent (not preferring local handling) the
preferred one, keeps a Home Assistant token for the simulator, and then checks all of it and the
demo home's lights and areas. Any check that fails is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import json
import os
from pathlib import Path
import sys
import time
from typing import Any

from .ha import CommandError, HomeAssistantSocket
from .http import HttpError, http
from .state import DEFAULT_STATE, load_state, save_state

DOMAIN = "openai_realtime_voice"
DEV_USER = {"name": "Developer", "username": "dev", "password": "dev"}
ASSISTANT = "OpenAI Realtime"
DEMO_LIGHTS = {
    "light.kitchen_light": "Kitchen",
    "light.living_room_light": "Living Room",
    "light.bedroom_light": "Bedroom",
}
ONBOARDING_SKIPPED = ["core_config", "analytics"]


def say(line: str, *, error: bool = False) -> None:
    """Print one progress line (stderr for problems)."""
    print(line, file=sys.stderr if error else sys.stdout, flush=True)


class SetupError(Exception):
    """A step or a check failed; the message says what is wrong."""


def keep_http_port(config: Path, port: int) -> int | None:
    """Keep Home Assistant's stored HTTP configuration on `port`; the old port if it changed.

    Since 2026.10 the `http` integration keeps its settings in `.storage/http`, takes YAML only
    once (as a *pending* configuration that reverts, with a restart, unless confirmed in the UI
    within five minutes) and ignores it afterwards with a repair notice. A fresh configuration
    takes its port from the `SETUP_PORT` environment variable (`default_server_port()` in
    `homeassistant/components/http/config.py`), which scripts/develop sets; an existing one
    keeps the port it was first started with, so a new `--port` is written into the stored,
    confirmed (stable) configuration here, while Home Assistant is stopped.
    """
    path = config / ".storage" / "http"
    try:
        stored = json.loads(path.read_text())
        stable = stored["data"]["stable"]
        old = int(stable["server_port"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SetupError(f"cannot read Home Assistant's HTTP settings {path}: {err}") from err
    if old == port and stored["data"].get("pending") is None:
        return None
    stable["server_port"] = port
    stored["data"]["pending"] = None  # a trial left by YAML: the stable port is the one wanted
    path.write_text(json.dumps(stored, indent=2))
    return old


def follow_offline_server(config: Path, api_key: str, base_url: str) -> str | None:
    """Point an entry made for the local server on another port at `base_url`; the old URL.

    Runs while Home Assistant is stopped, so the entry does not first fail to set up against a
    port nobody listens on. Only an entry with the local server's key and a loopback URL is
    moved: one with a real key stays as it is.
    """
    path = config / ".storage" / "core.config_entries"
    try:
        stored = json.loads(path.read_text())
        entries = stored["data"]["entries"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SetupError(f"cannot read Home Assistant's config entries {path}: {err}") from err
    for entry in entries:
        data = entry.get("data") or {}
        old = str(data.get("base_url") or "")
        if (
            entry.get("domain") == DOMAIN
            and data.get("api_key") == api_key
            and old.startswith("http://127.0.0.1:")
            and old != base_url
        ):
            data["base_url"] = base_url
            path.write_text(json.dumps(stored, indent=2))
            return old
    return None


def prepare(config: Path) -> bool:
    """Before the first start: skip onboarding's internet integrations; True if it did."""
    onboarding = config / ".storage" / "onboarding"
    if onboarding.exists():
        return False
    onboarding.parent.mkdir(parents=True, exist_ok=True)
    onboarding.write_text(
        json.dumps(
            {
                "version": 4,
                "minor_version": 1,
                "key": "onboarding",
                "data": {"done": ONBOARDING_SKIPPED},
            }
        )
    )
    return True


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DevInstance:
    """The Home Assistant started by `scripts/develop`."""

    def __init__(self, base_url: str, pid: int | None = None) -> None:
        """Talk to `base_url` (e.g. http://127.0.0.1:8123); `pid` is its process, if known."""
        self.base = base_url.rstrip("/")
        self.client_id = self.base + "/"
        self.pid = pid
        self.token = ""

    def wait(self, probe: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `probe` until it returns something other than None; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if not _alive(self.pid):
                raise SetupError(f"Home Assistant exited while waiting for {what}")
            try:
                if (result := probe()) is not None:
                    return result
            except OSError, ValueError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"{what} did not happen within {timeout:.0f} s")
            time.sleep(1)

    def wait_up(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for the HTTP API; return the pending onboarding steps (none once onboarded)."""
        return self.wait(self._onboarding, timeout, "Home Assistant answering HTTP")  # type: ignore[no-any-return]

    def _onboarding(self) -> list[dict[str, Any]] | None:
        try:
            steps: list[dict[str, Any]] = http("GET", self.base + "/api/onboarding")
            return steps
        except HttpError as err:
            if err.status != 404:
                raise
        # Onboarded instances have no onboarding API; the auth providers answer once the owner
        # exists (and refuse with "onboarding_required" before).
        providers = http("GET", self.base + "/auth/providers")
        return [] if providers else None

    def onboard(self, steps: list[dict[str, Any]]) -> None:
        """Create the development owner (fresh instance) or log in as it."""
        if steps and not any(s["step"] == "user" and s["done"] for s in steps):
            created = http(
                "POST",
                self.base + "/api/onboarding/users",
                body={**DEV_USER, "client_id": self.client_id, "language": "en"},
            )
            self._token_from_code(created["auth_code"])
            say(
                f"==> created the owner {DEV_USER['username']!r}, password {DEV_USER['password']!r}"
            )
        else:
            self.login()
        pending = {s["step"] for s in steps if not s["done"]}
        for step in ("core_config", "analytics"):
            if step in pending:
                http("POST", f"{self.base}/api/onboarding/{step}", body={}, token=self.token)
        if "integration" in pending:
            http(
                "POST",
                self.base + "/api/onboarding/integration",
                body={"client_id": self.client_id, "redirect_uri": self.client_id},
                token=self.token,
            )

    def login(self) -> None:
        """Log in as the development owner (fails if onboarding used another account)."""
        flow = http(
            "POST",
            self.base + "/auth/login_flow",
            body={
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": self.client_id,
            },
        )
        result = http(
            "POST",
            f"{self.base}/auth/login_flow/{flow['flow_id']}",
            body={
                "username": DEV_USER["username"],
                "password": DEV_USER["password"],
                "client_id": self.client_id,
            },
        )
        if result.get("type") != "create_entry":
            raise SetupError(
                "cannot log in as the development user 'dev'; add the integration in the UI"
            )
        self._token_from_code(result["result"])

    def _token_from_code(self, code: str) -> None:
        tokens = http(
            "POST",
            self.base + "/auth/token",
            form={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
        )
        self.token = tokens["access_token"]

    def wait_running(self, timeout: float) -> None:
        """Wait until Home Assistant has finished starting."""

        def running() -> bool | None:
            state = http("GET", self.base + "/api/config", token=self.token).get("state")
            return True if state == "RUNNING" else None

        self.wait(running, timeout, "Home Assistant finishing its start")

    def socket(self) -> HomeAssistantSocket:
        """A WebSocket API connection as the owner."""
        return HomeAssistantSocket(self.base, self.token)

    def entries(self) -> list[dict[str, Any]]:
        """This integration's config entries."""
        entries: list[dict[str, Any]] = http(
            "GET", f"{self.base}/api/config/config_entries/entry?domain={DOMAIN}", token=self.token
        )
        return entries

    def add_entry(self, api_key: str, base_url: str | None) -> None:
        """Complete the config flow through the REST API."""
        flow = http(
            "POST",
            self.base + "/api/config/config_entries/flow",
            body={"handler": DOMAIN, "show_advanced_options": False},
            token=self.token,
        )
        user_input: dict[str, Any] = {"api_key": api_key, "dialect": "ga"}
        if base_url:
            user_input["base_url"] = base_url
        result = http(
            "POST",
            f"{self.base}/api/config/config_entries/flow/{flow['flow_id']}",
            body=user_input,
            token=self.token,
        )
        if result.get("type") != "create_entry":
            raise SetupError(f"the config flow answered {result.get('errors') or result}")

    def agent_id(self, ws: HomeAssistantSocket) -> str | None:
        """The entity id of the entry's conversation agent, once it exists."""
        for entity in ws.command("config/entity_registry/list"):
            if entity["platform"] == DOMAIN and entity["entity_id"].startswith("conversation."):
                return str(entity["entity_id"])
        return None

    def ensure_assistant(self, ws: HomeAssistantSocket, agent_id: str) -> str:
        """Create or correct the "OpenAI Realtime" assistant and make it the preferred one."""
        pipelines = ws.command("assist_pipeline/pipeline/list")
        wanted = {
            "conversation_engine": agent_id,
            "conversation_language": "en",
            "language": "en",
            "name": ASSISTANT,
            "prefer_local_intents": False,
        }
        existing = next((p for p in pipelines["pipelines"] if p["name"] == ASSISTANT), None)
        if existing is None:
            created = ws.command(
                "assist_pipeline/pipeline/create",
                **wanted,
                stt_engine=None,
                stt_language=None,
                tts_engine=None,
                tts_language=None,
                tts_voice=None,
                wake_word_entity=None,
                wake_word_id=None,
            )
            pipeline_id = str(created["id"])
            say(f"==> created the Assist assistant {ASSISTANT!r} with the agent {agent_id}")
        else:
            pipeline_id = str(existing["id"])
            if any(existing.get(key) != value for key, value in wanted.items()):
                fields = {key: value for key, value in existing.items() if key not in ("id",)}
                ws.command(
                    "assist_pipeline/pipeline/update",
                    pipeline_id=pipeline_id,
                    **{**fields, **wanted},
                )
                say(f"==> corrected the Assist assistant {ASSISTANT!r}")
        if pipelines["preferred_pipeline"] != pipeline_id:
            ws.command("assist_pipeline/pipeline/set_preferred", pipeline_id=pipeline_id)
            say(f"==> {ASSISTANT!r} is now the preferred assistant")
        return pipeline_id

    def keep_token(self, state_path: Path) -> None:
        """Keep a long-lived token for the simulator (a new one only if the kept one fails)."""
        state = load_state(state_path, None)
        kept = state["home_assistant"].get(self.base)
        if kept:
            try:
                http("GET", self.base + "/api/", token=kept)
                return
            except HttpError as err:
                if err.status != 401:
                    raise
        # Token names are unique per user: a new port or a lost state file needs a new name.
        name = f"scripts/simulate {self.base} {time.strftime('%Y-%m-%d %H:%M:%S')}"
        with self.socket() as ws:
            token = ws.command("auth/long_lived_access_token", client_name=name, lifespan=3650)
        state["home_assistant"][self.base] = token
        save_state(state_path, state)
        say(f"==> saved a Home Assistant token for scripts/simulate in {state_path}")

    def problems(self, ws: HomeAssistantSocket, *, expect_entry: bool) -> list[str]:
        """What is not as the demo needs it; empty when everything is in place."""
        problems: list[str] = []
        entities = {e["entity_id"]: e for e in ws.command("config/entity_registry/list")}
        devices = {d["id"]: d for d in ws.command("config/device_registry/list")}
        areas = {a["area_id"]: a["name"] for a in ws.command("config/area_registry/list")}
        for entity_id, room in DEMO_LIGHTS.items():
            entity = entities.get(entity_id)
            if entity is None or entity["platform"] != "demo_home":
                problems.append(f"the demo home has no {entity_id}")
                continue
            if entity.get("config_entry_id") is None:
                problems.append(f"{entity_id} has no config entry")
            device = devices.get(entity.get("device_id") or "", {})
            area = areas.get(entity.get("area_id") or device.get("area_id") or "")
            if area != room:
                problems.append(f"{entity_id} is in the area {area!r}, not {room!r}")
        if not expect_entry:
            return problems
        states = [e["state"] for e in self.entries()]
        if states != ["loaded"]:
            problems.append(f"the OpenAI Realtime Voice entry is {states or 'missing'}")
        agent_id = self.agent_id(ws)
        if agent_id is None:
            problems.append("the OpenAI Realtime Voice agent (conversation entity) is missing")
            return problems
        pipelines = ws.command("assist_pipeline/pipeline/list")
        ours = [p for p in pipelines["pipelines"] if p["name"] == ASSISTANT]
        if not ours:
            problems.append(f"no Assist assistant named {ASSISTANT!r}")
            return problems
        if ours[0]["conversation_engine"] != agent_id:
            problems.append(f"{ASSISTANT!r} uses {ours[0]['conversation_engine']}, not {agent_id}")
        if ours[0].get("prefer_local_intents"):
            problems.append(f"{ASSISTANT!r} prefers handling commands locally")
        if pipelines["preferred_pipeline"] != ours[0]["id"]:
            problems.append(f"{ASSISTANT!r} is not the preferred assistant")
        return problems


def setup(args: argparse.Namespace) -> None:
    """Onboard, add the entry and the assistant, then check everything; raise on a problem."""
    openai_key = os.environ.get("OPENAI_API_KEY", "").strip()
    instance = DevInstance(args.url, args.pid)
    instance.onboard(instance.wait_up(args.timeout))
    instance.wait_running(args.timeout)
    entries = instance.entries()
    if entries:
        say("==> OpenAI Realtime Voice is already configured")
    elif args.offline:
        instance.add_entry(args.api_key, args.offline)
        say(f"==> added OpenAI Realtime Voice using the local server {args.offline}")
    elif openai_key:
        instance.add_entry(openai_key, None)
        say("==> added OpenAI Realtime Voice with OPENAI_API_KEY")
    else:
        say("==> no OPENAI_API_KEY: add OpenAI Realtime Voice in the UI with your key")
    expect_entry = bool(entries or args.offline or openai_key)
    with instance.socket() as ws:
        if expect_entry:
            agent_id = instance.wait(
                lambda: instance.agent_id(ws), 60, "the OpenAI Realtime Voice agent"
            )
            instance.ensure_assistant(ws, agent_id)
        deadline = time.monotonic() + 30  # the demo home is imported while Home Assistant starts
        while problems := instance.problems(ws, expect_entry=expect_entry):
            if time.monotonic() > deadline:
                raise SetupError("; ".join(problems))
            time.sleep(1)
    instance.keep_token(args.simulator_state)
    say(
        "==> checked: demo lights in the Kitchen, Living Room and Bedroom"
        + (f"; {ASSISTANT!r} is the preferred assistant" if expect_entry else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`prepare` or `setup`; exit status 1 with the reason when something is wrong."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator.devsetup",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="before the first start of a config directory")
    prep.add_argument("--config", type=Path, required=True)
    prep.add_argument("--port", type=int, help="Home Assistant's HTTP port")
    prep.add_argument("--offline", metavar="BASE_URL", help="the local Realtime server's URL")
    prep.add_argument("--api-key", default="offline", help="key for the local server")
    run = commands.add_parser(
        "setup",
        help="onboard, add the integration and the assistant, check",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run.add_argument("--url", default="http://127.0.0.1:8123", help="Home Assistant")
    run.add_argument("--config", type=Path, help="its configuration directory")
    run.add_argument("--offline", metavar="BASE_URL", help="the local Realtime server's URL")
    run.add_argument("--api-key", default="offline", help="key for the local server")
    run.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for startup")
    run.add_argument("--pid", type=int, help="Home Assistant's process (stop waiting if it ends)")
    run.add_argument(
        "--simulator-state", type=Path, default=DEFAULT_STATE, help="where the token is kept"
    )
    args = parser.parse_args(argv)
    if args.command == "prepare":
        if prepare(args.config):
            say("==> fresh configuration: onboarding will not add Met, Radio Browser and others")
        try:
            if args.port is not None and (old := keep_http_port(args.config, args.port)):
                say(f"==> Home Assistant's HTTP port: {old} -> {args.port}")
            if args.offline and (
                moved := follow_offline_server(args.config, args.api_key, args.offline)
            ):
                say(f"==> moved OpenAI Realtime Voice from {moved} to {args.offline}")
        except SetupError as err:
            say(f"!! {err}", error=True)
            return 1
        return 0
    try:
        setup(args)
    except (SetupError, CommandError, OSError, ValueError, KeyError) as err:
        say(f"!! automatic setup failed: {err}", error=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
