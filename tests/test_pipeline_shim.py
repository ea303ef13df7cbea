"""The pipeline shim: what it relies on in Home Assistant's Assist pipeline and TTS, checked
against the installed release (these tests fail when a release changes it), and what it does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
import inspect
from typing import Any

from homeassistant.components import tts
from homeassistant.components.assist_pipeline import PipelineEventType
from homeassistant.components.assist_pipeline.pipeline import (
    KEY_ASSIST_PIPELINE,
    PIPELINE_FIELDS,
    PipelineRunDebug,
    async_get_pipeline,
)
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import probatio as vol
import pytest

from custom_components.openai_realtime_voice.pipeline_shim import (
    create_pipeline,
    keep_out_of_tts_cache,
    pipeline_runs,
)

SETTINGS: dict[str, Any] = {
    "conversation_engine": "conversation.home_assistant",
    "conversation_language": "en",
    "language": "en",
    "name": "Shim",
    "stt_engine": None,
    "stt_language": None,
    "tts_engine": None,
    "tts_language": None,
    "tts_voice": None,
    "wake_word_entity": None,
    "wake_word_id": None,
    "prefer_local_intents": False,
}
"""A pipeline's settings as `speech_flow` passes them: every field of the pipeline form."""


def _parameters(function: Callable[..., Any] | None) -> list[str] | None:
    return None if function is None else list(inspect.signature(function).parameters)


def _fields(cls: type) -> set[str]:
    return (
        {field.name for field in dataclasses.fields(cls)}
        if dataclasses.is_dataclass(cls)
        else set()
    )


def contract_breaks(
    pipeline_data: object,
    *,
    run_debug: type = PipelineRunDebug,
    result_stream: type = tts.ResultStream,
    get_stream: Callable[..., Any] = tts.async_get_stream,
    pipeline_fields: Mapping[Any, Any] = PIPELINE_FIELDS,
) -> list[str]:
    """How the installed Home Assistant differs from what the shim relies on (empty: it matches)."""
    breaks = []
    if not isinstance(getattr(pipeline_data, "pipeline_debug", None), dict):
        breaks.append("pipeline_debug is gone")
    if "events" not in _fields(run_debug):
        breaks.append("PipelineRunDebug.events is gone")
    store = getattr(pipeline_data, "pipeline_store", None)
    if (found := _parameters(getattr(store, "async_create_item", None))) != ["data"]:
        breaks.append(f"pipeline_store.async_create_item({', '.join(found or ['gone'])}) changed")
    required = {str(key) for key in pipeline_fields if isinstance(key, vol.Required)}
    known = {str(key) for key in pipeline_fields}
    if changed := (required - set(SETTINGS)) | (set(SETTINGS) - known):
        breaks.append(f"the pipeline's fields changed: {sorted(changed)}")
    if (found := _parameters(get_stream)) != ["hass", "token"]:
        breaks.append(f"tts.async_get_stream({', '.join(found or [])}) changed")
    breaks.extend(
        f"ResultStream.{name} is gone"
        for name in ("options", "use_file_cache")
        if name not in _fields(result_stream)
    )
    return breaks


@pytest.fixture
async def pipelines(hass: HomeAssistant) -> None:
    """Home Assistant's Assist pipeline, with its own agent."""
    assert await async_setup_component(hass, "homeassistant", {})
    assert await async_setup_component(hass, "assist_pipeline", {})


@pytest.mark.usefixtures("pipelines")
async def test_home_assistant_still_has_what_the_shim_relies_on(hass: HomeAssistant) -> None:
    """The installed Home Assistant has each name, field and parameter the shim uses."""
    assert contract_breaks(hass.data[KEY_ASSIST_PIPELINE]) == []


def test_the_contract_check_sees_a_change() -> None:
    """A release that renames a parameter, a field or drops an attribute is caught."""

    class Store:
        async def async_create_item(self, item: dict[str, Any]) -> None:
            """A changed signature."""

    class Data:
        pipeline_store = Store()

    @dataclasses.dataclass
    class Stream:
        options: dict[str, Any]

    def get_stream(hass: HomeAssistant, stream_token: str) -> None:
        """A renamed parameter."""

    assert contract_breaks(
        Data(),
        run_debug=Stream,
        result_stream=Stream,
        get_stream=get_stream,
        pipeline_fields={
            **{key: value for key, value in PIPELINE_FIELDS.items() if key != "tts_voice"},
            vol.Required("stt_model"): str,
        },
    ) == [
        "pipeline_debug is gone",
        "PipelineRunDebug.events is gone",
        "pipeline_store.async_create_item(item) changed",
        "the pipeline's fields changed: ['stt_model', 'tts_voice']",
        "tts.async_get_stream(hass, stream_token) changed",
        "ResultStream.use_file_cache is gone",
    ]
    assert contract_breaks(object()) == [
        "pipeline_debug is gone",
        "pipeline_store.async_create_item(gone) changed",
    ]


@pytest.mark.usefixtures("pipelines")
async def test_a_created_pipeline_runs_and_its_run_is_read(
    hass: HomeAssistant, hass_ws_client: Any
) -> None:
    """`create_pipeline` stores the settings as given; `pipeline_runs` yields the run's events
    as the debug view shows them: run-start with the conversation, through run-end."""
    pipeline_id = await create_pipeline(hass, SETTINGS)
    assert async_get_pipeline(hass, pipeline_id).to_json() == {"id": pipeline_id, **SETTINGS}
    assert list(pipeline_runs(hass)) == []

    ws = await hass_ws_client(hass)
    await ws.send_json_auto_id(
        {
            "type": "assist_pipeline/run",
            "pipeline": pipeline_id,
            "start_stage": "intent",
            "end_stage": "intent",
            "input": {"text": "hello"},
            "conversation_id": "shim-conversation",
        }
    )
    assert (await ws.receive_json())["success"]
    while (await ws.receive_json())["event"]["type"] != "run-end":
        pass

    [(run_pipeline, events)] = list(pipeline_runs(hass))
    assert run_pipeline == pipeline_id
    assert events[0].type is PipelineEventType.RUN_START
    assert events[0].data is not None
    assert events[0].data["conversation_id"] == "shim-conversation"
    assert events[-1].type is PipelineEventType.RUN_END


@pytest.mark.usefixtures("pipelines")
async def test_a_stream_that_is_gone_is_left_alone(hass: HomeAssistant) -> None:
    """No stream for the token: nothing to keep out of the cache (a shared turn's own stream is
    kept out in tests/test_speech_pipeline.py)."""
    assert await async_setup_component(hass, tts.DOMAIN, {})
    assert keep_out_of_tts_cache(hass, "no-such-token", "shared_turn") is False
