"""End to end: a real `hass` process, the offline Realtime server and the device simulator.

The flow a user meets: the config flow through the REST API, Assist turning a light on
through `/api/conversation/process`, a simulated xiaozhi device through OTA, pairing and the
WebSocket hello, then a clean shutdown without errors from this integration.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import wave

import pytest

from tests.e2e_helpers import (
    DOMAIN,
    HomeAssistantProcess,
    RealtimeProcess,
    allow_sockets,
    running,
    start_simulator,
    wait_for,
    ws_command,
)

pytestmark = [pytest.mark.usefixtures("socket_enabled"), pytest.mark.timeout(120)]

KITCHEN = "light.kitchen_light"


@pytest.fixture(scope="module")
def realtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealtimeProcess]:
    """The local Realtime server in scenario mode (config/scenario.yaml), as a process."""
    allow_sockets()
    server = RealtimeProcess()
    server.start(tmp_path_factory.mktemp("realtime") / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ha(
    tmp_path_factory: pytest.TempPathFactory, realtime: RealtimeProcess
) -> Iterator[HomeAssistantProcess]:
    """Home Assistant with the demo home, onboarded, with our entry added over REST."""
    allow_sockets()
    with running(HomeAssistantProcess(tmp_path_factory.mktemp("ha"))) as hass:
        result = hass.add_entry(realtime.url)
        assert result["type"] == "create_entry", result
        yield hass


@pytest.fixture(scope="module")
def device_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the simulated device keeps its identity and token across runs."""
    return tmp_path_factory.mktemp("device") / "simulator.json"


def _turn_off_kitchen(ha: HomeAssistantProcess) -> None:
    ha.api("POST", "/api/services/light/turn_off", {"entity_id": KITCHEN})
    wait_for(lambda: ha.state(KITCHEN) == "off", 10, "the kitchen light to be off")


def test_entry_is_loaded(ha: HomeAssistantProcess) -> None:
    """The entry made through the REST flow API is loaded and has its Assist agent."""
    entries = ha.api("GET", f"/api/config/config_entries/entry?domain={DOMAIN}")
    assert [e["state"] for e in entries] == ["loaded"]
    assert ha.states("conversation.openai_realtime")
    assert ha.state(KITCHEN) == "off"


def test_rest_flow_rejects_a_wrong_key(ha: HomeAssistantProcess, realtime: RealtimeProcess) -> None:
    """A wrong key is refused by the server and shown on the form, nothing is created."""
    result = ha.add_entry(realtime.url, api_key="wrong-key")
    assert result["type"] == "form"
    assert result["errors"] == {"base": "invalid_auth"}
    ha.api("DELETE", f"/api/config/config_entries/flow/{result['flow_id']}")


def test_assist_turns_the_light_on(ha: HomeAssistantProcess) -> None:
    """Typed text goes through our agent, the scenario calls HassTurnOn, the light goes on."""
    _turn_off_kitchen(ha)
    agent = ha.states("conversation.openai_realtime")[0]["entity_id"]
    reply = ha.api(
        "POST",
        "/api/conversation/process",
        {"text": "Please turn on the kitchen light", "agent_id": agent, "language": "en"},
    )
    assert reply["response"]["response_type"] == "action_done", reply
    speech = reply["response"]["speech"]["plain"]["speech"]
    assert speech == "The kitchen light is on."
    assert ha.state(KITCHEN) == "on"


def test_assist_pipeline_path_changes_nothing(ha: HomeAssistantProcess) -> None:
    """A sentence the scenario does not know gets the fallback answer and no action."""
    _turn_off_kitchen(ha)
    agent = ha.states("conversation.openai_realtime")[0]["entity_id"]
    reply = ha.api(
        "POST",
        "/api/conversation/process",
        {"text": "What is the weather like?", "agent_id": agent, "language": "en"},
    )
    assert "offline demo" in reply["response"]["speech"]["plain"]["speech"]
    assert ha.state(KITCHEN) == "off"


def test_device_pairs_through_ota_and_the_flow_api(
    ha: HomeAssistantProcess, device_state: Path, tmp_path: Path
) -> None:
    """The simulator boots, shows a code, is approved through the discovered flow, connects."""
    report_file = tmp_path / "report.json"
    run = start_simulator(ha, device_state, "--pair-only", "--report", str(report_file))
    code = run.read_until(r"pairing code: (\d+)").group(1)
    flows = wait_for(
        lambda: [f for f in ha.flows_in_progress() if f["handler"] == DOMAIN],
        10,
        "the discovered device flow",
    )
    assert flows[0]["context"]["source"] == "integration_discovery"
    wrong = ha.api(
        "POST", f"/api/config/config_entries/flow/{flows[0]['flow_id']}", {"code": "000000"}
    )
    assert wrong["type"] == "form"
    assert wrong["errors"]
    approved = ha.api(
        "POST", f"/api/config/config_entries/flow/{flows[0]['flow_id']}", {"code": code}
    )
    assert approved["type"] == "abort", approved
    assert approved["reason"] == "device_paired"
    assert run.finish() == 0, run.output
    report = json.loads(report_file.read_text())
    assert report["paired_now"] is True
    assert report["error"] is None
    assert "self.audio_speaker.set_volume" in report["tools"]
    assert "==> approved" in run.output

    # A second boot reuses the saved token: no new code, straight to the WebSocket.
    again = start_simulator(ha, device_state, "--pair-only", "--report", str(report_file))
    assert again.finish() == 0, again.output
    assert "pairing code" not in again.output
    assert json.loads(report_file.read_text())["paired_now"] is False


def test_device_turns_the_light_on_by_voice(
    ha: HomeAssistantProcess, device_state: Path, tmp_path: Path
) -> None:
    """Speech from the paired simulator turns the light on and comes back as a spoken reply."""
    _turn_off_kitchen(ha)
    report_file, reply = tmp_path / "report.json", tmp_path / "reply.wav"
    run = start_simulator(
        ha,
        device_state,
        "--say",
        "Turn on the kitchen light",
        "--out",
        str(reply),
        "--report",
        str(report_file),
        "--reply-timeout",
        "20",
    )
    assert run.finish() == 0, run.output
    report = json.loads(report_file.read_text())
    assert report["paired_now"] is False
    assert ha.state(KITCHEN) == "on"
    assert report["tts"] == ["The kitchen light is on."]
    assert report["stt"] == ["turn on the kitchen light"]
    assert report["latency_ms"] is not None
    assert report["reply_seconds"] > 0.5
    with wave.open(str(reply)) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(
            report["reply_seconds"], abs=0.05
        )
    assert "latency:" in run.output
    # One definition: the device's Response latency sensor and the simulator measure the same
    # span (end of speech at the device -> first reply audio, the 500 ms VAD silence included).
    [sensor] = [
        s
        for s in ha.states("sensor.")
        if s["entity_id"].endswith("_response_latency")
        and not s["entity_id"].endswith("_assist_response_latency")  # the Assist satellites'
    ]
    assert float(sensor["state"]) == pytest.approx(report["latency_ms"], abs=200)
    assert (
        float(sensor["state"]) > 400
    )  # most of the VAD window (counted from speech_stopped: a few ms)


@pytest.fixture
def kitchen_hidden(socket_enabled: None, ha: HomeAssistantProcess) -> Iterator[None]:
    """The kitchen light not exposed to Assist: turning it on by name fails in Home Assistant."""
    _turn_off_kitchen(ha)

    def expose(should: bool) -> None:
        ws_command(
            ha.port,
            ha.token,
            {
                "type": "homeassistant/expose_entity",
                "assistants": ["conversation"],
                "entity_ids": [KITCHEN],
                "should_expose": should,
            },
        )

    expose(False)
    try:
        yield
    finally:
        expose(True)


@pytest.mark.usefixtures("kitchen_hidden")
def test_assist_says_when_the_tool_failed(ha: HomeAssistantProcess) -> None:
    """The typed turn's tool fails: the answer says what failed, not the success line."""
    agent = ha.states("conversation.openai_realtime")[0]["entity_id"]
    reply = ha.api(
        "POST",
        "/api/conversation/process",
        {"text": "Turn on the kitchen light", "agent_id": agent, "language": "en"},
    )
    speech = reply["response"]["speech"]["plain"]["speech"]
    assert speech.startswith("Sorry, that did not work: "), speech
    assert "kitchen light" in speech.lower()
    assert ha.state(KITCHEN) == "off"


@pytest.mark.usefixtures("kitchen_hidden")
def test_device_says_when_the_tool_failed_and_the_simulator_fails(
    ha: HomeAssistantProcess, device_state: Path, tmp_path: Path
) -> None:
    """Spoken turn, failing tool: the spoken line says so, the simulator prints the failed
    call from Home Assistant's side and exits 1; `--expect-state` reports the light still off.
    """
    report_file = tmp_path / "report.json"
    run = start_simulator(
        ha,
        device_state,
        "--say",
        "Turn on the kitchen light",
        "--ha-token",
        ha.token,
        "--expect-state",
        f"{KITCHEN}=on",
        "--report",
        str(report_file),
        "--reply-timeout",
        "20",
    )
    assert run.finish() == 1, run.output
    report = json.loads(report_file.read_text())
    assert report["error"] is None, run.output
    [spoken] = report["tts"]
    assert spoken.startswith("Sorry, that did not work: "), run.output
    assert spoken != "The kitchen light is on."
    [call] = report["tool_calls"]
    assert call["name"] == "intent__HassTurnOn"
    assert call["arguments"] == {"name": "Kitchen light"}
    assert call["ok"] is False
    assert call["outcome"].startswith("failed: ")
    assert report["states"] == [
        {"entity_id": KITCHEN, "expected": "on", "state": "off", "ok": False}
    ]
    assert "tool: intent__HassTurnOn" in run.output
    assert f"!! failed: intent__HassTurnOn {call['outcome']}" in run.output
    assert ha.state(KITCHEN) == "off"


def test_a_refused_device_token_offers_to_pair_again(
    ha: HomeAssistantProcess, device_state: Path, tmp_path: Path
) -> None:
    """A saved token Home Assistant no longer accepts (401) is named, with the way out;
    `--pair-again` pairs a new identity and connects.
    """
    state_file = tmp_path / "simulator.json"
    state = json.loads(device_state.read_text())
    for saved in state["websocket"].values():
        saved["token"] = "a-token-from-a-wiped-config"
    state_file.write_text(json.dumps(state))

    refused = start_simulator(ha, state_file, "--pair-only")
    assert refused.finish() == 1, refused.output
    assert "refused the saved device token (401)" in refused.output
    assert "--pair-again" in refused.output

    again = start_simulator(ha, state_file, "--pair-only", "--pair-again")
    code = again.read_until(r"pairing code: (\d+)").group(1)
    flow = wait_for(
        lambda: [f for f in ha.flows_in_progress() if f["handler"] == DOMAIN],
        10,
        "the discovered device flow",
    )[0]
    approved = ha.api("POST", f"/api/config/config_entries/flow/{flow['flow_id']}", {"code": code})
    assert approved["reason"] == "device_paired", approved
    assert again.finish() == 0, again.output
    assert "pairing again as the new device" in again.output
    assert json.loads(state_file.read_text())["mac"] != state["mac"]


def test_home_assistant_stops_cleanly(ha: HomeAssistantProcess) -> None:
    """SIGTERM ends Home Assistant with status 0 and no error from this integration."""
    assert ha.stop() == 0, ha.log_tail()
    problems = ha.our_problems()
    assert not problems, "\n\n".join(problems)
