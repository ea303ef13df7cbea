"""Prepare a development Home Assistant for `scripts/develop`: owner, token, integration entry.

On a fresh `config/` it finishes onboarding with a development owner (printed), then adds the
OpenAI Realtime Voice entry through the REST config flow: against the local Realtime server
with `--offline`, else with `OPENAI_API_KEY` when set. An existing entry is left alone.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
import sys
import time
from typing import Any

from .http import http

DOMAIN = "openai_realtime"
DEV_USER = {"name": "Developer", "username": "dev", "password": "dev"}


def say(line: str, *, error: bool = False) -> None:
    """Print one progress line (stderr for problems)."""
    print(line, file=sys.stderr if error else sys.stdout, flush=True)


class SetupError(Exception):
    """A step failed; the message says what to do by hand."""


class DevInstance:
    """The Home Assistant started by `scripts/develop`."""

    def __init__(self, base_url: str) -> None:
        """Talk to `base_url` (e.g. http://127.0.0.1:8123)."""
        self.base = base_url.rstrip("/")
        self.client_id = self.base + "/"
        self.token = ""

    def wait_up(self, timeout: float) -> list[dict[str, Any]]:
        """Wait for the HTTP API; return the onboarding steps."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                steps: list[dict[str, Any]] = http("GET", self.base + "/api/onboarding")
                return steps
            except OSError, ValueError:
                if time.monotonic() > deadline:
                    raise SetupError("Home Assistant did not start in time") from None
                time.sleep(1)

    def onboard(self, steps: list[dict[str, Any]]) -> None:
        """Create the development owner and finish the remaining onboarding steps."""
        if not any(s["step"] == "user" and s["done"] for s in steps):
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

    def has_entry(self) -> bool:
        """Whether an OpenAI Realtime Voice entry exists already."""
        entries = http(
            "GET", f"{self.base}/api/config/config_entries/entry?domain={DOMAIN}", token=self.token
        )
        return bool(entries)

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the setup; exit status 1 with a hint when something has to be done by hand."""
    parser = argparse.ArgumentParser(prog="python -m simulator.devsetup")
    parser.add_argument("--url", default="http://127.0.0.1:8123")
    parser.add_argument("--offline", metavar="BASE_URL", help="the local Realtime server's URL")
    parser.add_argument("--api-key", default="offline", help="key for the local server")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    openai_key = os.environ.get("OPENAI_API_KEY", "").strip()
    instance = DevInstance(args.url)
    try:
        instance.onboard(instance.wait_up(args.timeout))
        if instance.has_entry():
            say("==> OpenAI Realtime Voice is already configured")
            return 0
        if args.offline:
            instance.add_entry(args.api_key, args.offline)
            say(f"==> added OpenAI Realtime Voice using the local server {args.offline}")
        elif openai_key:
            instance.add_entry(openai_key, None)
            say("==> added OpenAI Realtime Voice with OPENAI_API_KEY")
        else:
            say("==> no OPENAI_API_KEY: add OpenAI Realtime Voice in the UI with your key")
    except (SetupError, OSError, ValueError, KeyError) as err:
        say(f"!! automatic setup stopped: {err}", error=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
