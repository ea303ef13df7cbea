"""Browser test: Home Assistant's own UI in headless Chromium (Debian's), driven by Playwright.

Logs in, adds the integration through the config flow dialog against the offline Realtime
server, opens the options and a device page, and saves the screenshots the README shows. Any
untranslated key (`component.openai_realtime...`), translation error or error alert on screen
fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import tempfile

from playwright.sync_api import Page, sync_playwright
import pytest

from tests.e2e_helpers import (
    OWNER,
    ROOT,
    HomeAssistantProcess,
    RealtimeProcess,
    allow_sockets,
    running,
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
    else Path(tempfile.gettempdir()) / "openai_realtime_screenshots"
)
TIMEOUT_MS = 20_000

# Every text node and error alert on the page, shadow roots included.
SCREEN_PROBLEMS_JS = """
() => {
  const bad = [];
  const suspicious = new RegExp(
    "component\\.openai_realtime|Translation error|Unknown error|Config flow could not be loaded"
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


def screenshot(page: Page, name: str) -> None:
    """Save a README screenshot (only after the screen passed `assert_clean`)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / name))


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
    """The login form, then confirm the HTTP settings Home Assistant asks about on first start."""
    page.goto(ha.base_url + "/")
    page.get_by_role("textbox", name="Username").fill(OWNER["username"])
    page.get_by_role("textbox", name="Password").fill(OWNER["password"])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/home/**")
    confirm = page.get_by_role("button", name="Confirm")
    confirm.wait_for()
    confirm.click()


def test_add_configure_and_open_a_device_in_the_ui(
    stack: tuple[HomeAssistantProcess, RealtimeProcess], page: Page
) -> None:
    """The config flow dialog, the options dialog and the device page render cleanly."""
    ha, realtime = stack
    log_in(page, ha)

    page.goto(ha.base_url + "/config/integrations/dashboard/add?domain=openai_realtime")
    page.get_by_role("button", name="OK").click()
    page.get_by_role("textbox", name="API key").fill("offline")
    page.get_by_role("textbox", name="Base URL").fill(realtime.url)
    page.get_by_role("button", name="Submit").wait_for()
    assert_clean(page, "config flow")
    screenshot(page, "config-flow.png")
    page.get_by_role("button", name="Submit").click()
    page.get_by_role("button", name="Skip and finish").click()
    entries = ha.api("GET", "/api/config/config_entries/entry?domain=openai_realtime")
    assert [e["state"] for e in entries] == ["loaded"]

    page.goto(ha.base_url + "/config/integrations/integration/openai_realtime")
    page.get_by_role("button", name="Configure").click()
    page.get_by_text("Instructions", exact=True).wait_for()
    assert_clean(page, "options")
    screenshot(page, "options.png")
    page.keyboard.press("Escape")

    page.get_by_text("gpt-realtime-2.1").first.click()
    page.wait_for_url("**/config/devices/device/**")
    page.get_by_text("OpenAI Realtime").first.wait_for()
    page.wait_for_load_state("networkidle")
    assert_clean(page, "device page")
    screenshot(page, "device.png")
