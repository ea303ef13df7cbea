"""Browser test: Home Assistant's own UI in headless Chromium (Debian's), driven by Playwright.

Logs in, renders the config flow dialog in German and Simplified Chinese, adds the integration
in English against the offline Realtime server, opens the options and the first agent, pairs the
device simulator and opens its device page, and saves the screenshots the README shows. Any
untranslated key (`component.openai_realtime_voice...`), unfilled placeholder, translation error
or error alert on screen
fails the test. Then, as `scripts/develop` leaves it, the Assist dialog with the default
assistant turns the kitchen light off through this integration's agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import contextlib
import hashlib
import json
import os
from pathlib import Path
import subprocess
import tempfile
import threading
from typing import Any

from playwright.sync_api import Page, sync_playwright
import pytest

from simulator.cli import load_state
from simulator.device import DeviceSimulator
from simulator.devsetup import ASSISTANT, DevInstance
from simulator.ha import HomeAssistantSocket
from tests.e2e_helpers import (
    DOMAIN,
    OWNER,
    ROOT,
    HomeAssistantProcess,
    RealtimeProcess,
    allow_sockets,
    running,
    start_simulator,
    wait_for,
    ws_command,
)

pytestmark = [pytest.mark.usefixtures("socket_enabled"), pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# README screenshots are refreshed on request only, so that test runs leave the tree clean:
# UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/test_browser.py
IMAGES = (
    ROOT / "docs" / "images"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "openai_realtime_voice_screenshots"
)
TIMEOUT_MS = 20_000

# Every text node and error alert on the page, shadow roots included.
SCREEN_PROBLEMS_JS = """
() => {
  const bad = [];
  const suspicious = new RegExp(
    "component\\.openai_realtime_voice|Translation error|Unknown error"
    + "|Config flow could not be loaded"
    + "|[{][a-z_]+[}]"
  );
  const visit = (root) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let node = walker.currentNode; node; node = walker.nextNode()) {
      if (node.nodeType === Node.TEXT_NODE) {
        if (suspicious.test(node.textContent)) bad.push(node.textContent.trim());
        continue;
      }
      if (node.localName === "ha-alert" && node.getAttribute("alert-type") === "error") {
        bad.push("error alert: " + node.textContent.trim());
      }
      for (const attr of ["label", "helper", "title"]) {
        const value = node.getAttribute && node.getAttribute(attr);
        if (value && suspicious.test(value)) bad.push(attr + ": " + value);
      }
      if (node.shadowRoot) visit(node.shadowRoot);
    }
  };
  visit(document);
  return bad;
}
"""


def assert_clean(page: Page, where: str) -> None:
    """Fail on untranslated keys, translation errors or error alerts anywhere on screen."""
    problems = page.evaluate(SCREEN_PROBLEMS_JS)
    assert not problems, f"{where}: {problems}"


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Save a README screenshot (only after the screen passed `assert_clean`)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / name), full_page=full_page)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[HomeAssistantProcess, RealtimeProcess]]:
    """Home Assistant with the frontend (onboarding finished) and the offline Realtime server."""
    allow_sockets()
    realtime = RealtimeProcess()
    realtime.start(tmp_path / "realtime.log")
    try:
        (tmp_path / "ha").mkdir()
        with running(HomeAssistantProcess(tmp_path / "ha", frontend=True), finish=True) as ha:
            yield ha, realtime
            assert ha.stop() == 0
            assert not ha.our_problems(), ha.our_problems()
    finally:
        realtime.stop()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    """A fresh headless Chromium profile."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def log_in(page: Page, ha: HomeAssistantProcess) -> None:
    """The login form (the HTTP settings are stored, so nothing asks for a confirmation)."""
    page.goto(ha.base_url + "/")
    page.get_by_role("textbox", name="Username").fill(OWNER["username"])
    page.get_by_role("textbox", name="Password").fill(OWNER["password"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/home/**")


INTEGRATION = ROOT / "custom_components" / DOMAIN
# Home Assistant's own label of the button that confirms adding a custom integration.
CONFIRM = {"en": "OK", "de": "OK", "zh-Hans": "确定"}
AZURE_EXAMPLE = "https://YOUR-RESOURCE.openai.azure.com/openai/v1"


def use_language(page: Page, language: str) -> None:
    """The frontend's language choice, as its profile page stores it."""
    page.evaluate(
        "language => localStorage.setItem('selectedLanguage', JSON.stringify(language))", language
    )


def user_step(language: str) -> dict[str, Any]:
    """Our translation of the config flow's first step."""
    path = INTEGRATION / "translations" / f"{language}.json"
    step: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))["config"]["step"]["user"]
    return step


def translations(language: str) -> dict[str, Any]:
    """Our translation file for `language`."""
    path = INTEGRATION / "translations" / f"{language}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def open_profile_form(page: Page, ha: HomeAssistantProcess, language: str) -> None:
    """The paired device's profile form, from its row on the integration page (the cog)."""
    device = translations(language)["config_subentries"]["device"]
    step = device["step"]["reconfigure"]
    page.goto(ha.base_url + f"/config/integrations/integration/{DOMAIN}")
    page.get_by_role("button", name=device["initiate_flow"]["reconfigure"]).first.click()
    title = max(step["title"].split("{device}"), key=len).strip()  # the words around the name
    page.get_by_text(title, exact=False).first.wait_for()
    page.get_by_text(step["data"]["extra_instructions"], exact=True).first.wait_for()
    # The template example of the helper text, shown literally (not an ICU argument).
    page.get_by_text("{{ area }}", exact=False).first.wait_for()
    page.wait_for_load_state("networkidle")


def open_config_flow(page: Page, ha: HomeAssistantProcess, language: str) -> dict[str, Any]:
    """Start adding the integration; returns the step's texts once its form is on screen."""
    step = user_step(language)
    page.goto(ha.base_url + f"/config/integrations/dashboard/add?domain={DOMAIN}")
    page.get_by_role("button", name=CONFIRM[language], exact=True).click()
    page.get_by_role("textbox", name=step["data"]["api_key"]).wait_for()
    page.get_by_text(step["title"]).first.wait_for()
    page.get_by_text(AZURE_EXAMPLE, exact=False).first.wait_for()
    return step


def test_chinese_glyphs_are_installed() -> None:
    """Without a CJK font the zh-Hans screenshot shows boxes (scripts/setup installs one)."""
    fonts = subprocess.run(
        ["fc-list", ":lang=zh-cn", "family"], capture_output=True, text=True, check=True
    ).stdout
    assert fonts.strip(), "no Chinese font: run scripts/setup (fonts-wqy-microhei)"


def paired_device_id(ha: HomeAssistantProcess, mac: str) -> str:
    """The Home Assistant device of the paired simulator."""
    devices = ws_command(ha.port, ha.token, {"type": "config/device_registry/list"})
    return next(device["id"] for device in devices if [DOMAIN, mac] in device["identifiers"])


@contextlib.contextmanager
def connected(ha: HomeAssistantProcess, state_file: Path) -> Iterator[str]:
    """Keep the paired simulator's WebSocket open (as an idle device does) while the block runs;
    yields its MAC. The token is the one `python -m simulator` saved in `state_file`."""
    ota_url = ha.url("/api/openai_realtime_voice/ota/")
    state = load_state(state_file, None)
    # The key simulator.cli files the token under: one entry per OTA URL.
    saved = state["websocket"][hashlib.sha256(ota_url.encode()).hexdigest()[:12]]
    ready, stop = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    async def hold() -> None:
        device = DeviceSimulator(
            ota_url,
            mac=state["mac"],
            client_id=state["client_id"],
            language="en-US",
            ws_url=saved["url"],
            token=saved["token"],
        )
        try:
            await device.check_version()
            await device.open_audio_channel()
            ready.set()
            await asyncio.to_thread(stop.wait)
        finally:
            await device.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as err:  # reported to the test below
            failures.append(err)
            ready.set()

    thread = threading.Thread(target=run, name="simulated device", daemon=True)
    thread.start()
    try:
        assert ready.wait(30), "the simulated device did not connect"
        assert not failures, failures
        yield state["mac"]
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures


def test_add_configure_and_open_a_device_in_the_ui(
    stack: tuple[HomeAssistantProcess, RealtimeProcess], page: Page, tmp_path: Path
) -> None:
    """The config flow in German and Chinese, then in English; the options and the agent; a
    paired device."""
    ha, realtime = stack
    log_in(page, ha)

    # The first step in German and Simplified Chinese: our texts, the example URLs filled in.
    for language in ("de", "zh-Hans"):
        use_language(page, language)
        open_config_flow(page, ha, language)
        assert_clean(page, f"config flow ({language})")
        screenshot(page, f"config-flow-{language}.png")
        page.keyboard.press("Escape")
    use_language(page, "en")

    open_config_flow(page, ha, "en")
    page.get_by_role("textbox", name="API key").fill("offline")
    page.get_by_role("textbox", name="Base URL").fill(realtime.url)
    page.get_by_role("button", name="Submit").wait_for()
    assert_clean(page, "config flow")
    # Cosmetic only: let the filled fields' labels finish floating up before the screenshot.
    page.wait_for_timeout(500)
    screenshot(page, "config-flow.png")
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("button", name="Skip and finish").click()
    entries = ha.api("GET", f"/api/config/config_entries/entry?domain={DOMAIN}")
    assert [e["state"] for e in entries] == ["loaded"]

    page.goto(ha.base_url + f"/config/integrations/integration/{DOMAIN}")
    page.get_by_role("button", name="Configure").click()
    page.get_by_text("Monthly budget", exact=True).wait_for()
    assert_clean(page, "options")
    screenshot(page, "options.png")
    page.keyboard.press("Escape")

    # The first conversation agent's settings: its own subentry (the cog on its row).
    agent = translations("en")["config_subentries"]["conversation"]
    page.get_by_role("button", name=agent["initiate_flow"]["reconfigure"]).first.click()
    page.get_by_text(agent["step"]["reconfigure"]["data"]["prompt"], exact=True).first.wait_for()
    page.wait_for_load_state("networkidle")
    assert_clean(page, "agent")
    screenshot(page, "agent.png")
    page.keyboard.press("Escape")

    # Pair the simulator (its code approved through the discovered flow) and talk once, so
    # that the device has a response latency; then keep it connected for its page.
    state_file, report = tmp_path / "simulator.json", tmp_path / "report.json"
    run = start_simulator(
        ha, state_file, "--say", "Turn on the kitchen light", "--report", str(report)
    )
    code = run.read_until(r"pairing code: (\d+)").group(1)
    flow = wait_for(
        lambda: [f for f in ha.flows_in_progress() if f["handler"] == DOMAIN],
        10,
        "the discovered device",
    )[0]
    approved = ha.api("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"code": code})
    assert approved["reason"] == "device_paired", approved
    assert run.finish() == 0, run.output
    assert json.loads(report.read_text())["latency_ms"] is not None

    # The device's profile form in every language: no translation error (the `{{ area }}`
    # example once showed MALFORMED_ARGUMENT), unset fields look unset.
    for language in ("de", "zh-Hans", "en"):
        use_language(page, language)
        open_profile_form(page, ha, language)
        assert_clean(page, f"profile form ({language})")
        screenshot(page, f"profile-{language}.png" if language != "en" else "profile.png")
        page.keyboard.press("Escape")

    with connected(ha, state_file) as mac:
        page.goto(ha.base_url + f"/config/devices/device/{paired_device_id(ha, mac)}")
        for name in ("Connected", "Last seen", "Response latency", "Volume"):
            page.get_by_text(name, exact=True).first.wait_for()
        wait_for(
            lambda: [s for s in ha.states("binary_sensor.") if s["state"] == "on"],
            10,
            "the device to be connected",
        )
        page.wait_for_load_state("networkidle")
        assert_clean(page, "device page")
        screenshot(page, "device.png", full_page=True)


def test_assist_dialog_uses_the_openai_realtime_assistant(
    stack: tuple[HomeAssistantProcess, RealtimeProcess], page: Page
) -> None:
    """The default assistant, as scripts/develop sets it up, answers through our agent.

    Typed in the Assist dialog: the light goes off, the dialog shows the scenario's answer, and
    the pipeline run's debug record names this integration's agent as the engine, not handled
    locally.
    """
    ha, realtime = stack
    assert ha.add_entry(realtime.url)["type"] == "create_entry"
    kitchen = "light.kitchen_light"
    ha.api("POST", "/api/services/light/turn_on", {"entity_id": kitchen})
    wait_for(lambda: ha.state(kitchen) == "on", 10, "the kitchen light to be on")
    dev = DevInstance(ha.base_url)
    dev.token = ha.token
    with HomeAssistantSocket(ha.base_url, ha.token) as ws:
        agent_id = wait_for(lambda: dev.agent_id(ws), 30, "our conversation agent")
        pipeline_id = dev.ensure_assistant(ws, agent_id)

    log_in(page, ha)
    page.keyboard.press("a")  # the frontend's shortcut for the Assist dialog
    dialog = page.locator("ha-voice-command-dialog")
    dialog.get_by_text(ASSISTANT).first.wait_for()
    field = dialog.get_by_role("textbox")
    field.fill("turn off the kitchen light")
    field.press("Enter")
    dialog.get_by_text("The kitchen light is off.").wait_for()
    assert_clean(page, "assist dialog")
    wait_for(lambda: ha.state(kitchen) == "off", 10, "the kitchen light to be off")

    with HomeAssistantSocket(ha.base_url, ha.token) as ws:
        runs = ws.command("assist_pipeline/pipeline_debug/list", pipeline_id=pipeline_id)
        [run] = runs["pipeline_runs"]
        debug = ws.command(
            "assist_pipeline/pipeline_debug/get",
            pipeline_id=pipeline_id,
            pipeline_run_id=run["pipeline_run_id"],
        )
    events = {event["type"]: event["data"] for event in debug["events"]}
    assert events["intent-start"]["engine"] == agent_id
    # The agent is named after the entry ("OpenAI Realtime"), not the domain.
    assert agent_id == "conversation.openai_realtime"
    assert events["intent-start"]["prefer_local_intents"] is False
    assert events["intent-end"]["processed_locally"] is False
    speech = events["intent-end"]["intent_output"]["response"]["speech"]["plain"]["speech"]
    assert speech == "The kitchen light is off."
