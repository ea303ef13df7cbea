"""The one place the speech-to-speech path leans on Home Assistant's pipeline and TTS internals.

Home Assistant's Assist pipeline (2026.x, read from `homeassistant/components/assist_pipeline/`
and `tts/`) offers integrations `async_get_pipeline`, `async_get_pipelines`,
`async_update_pipeline` and `async_create_default_pipeline`, the pipeline events a satellite
receives from its own runs, and `tts.async_get_stream` for a run's speech. It offers no public
hook for:

1. **Which pipeline run a speech-to-text request serves.** A speech-to-text entity gets the
   audio and its metadata, not the run. Home Assistant records every run's events for its
   pipeline debug view (`PipelineData.pipeline_debug`, read by the
   `assist_pipeline/pipeline_debug/*` websocket commands the frontend uses); those events (the
   same ones a satellite receives) name the run's pipeline, conversation and speech, so the
   speech-to-text finds in them the run it serves and whether that run shares the agent's turn.
2. **Creating a pipeline with given settings.** `async_create_default_pipeline` creates one
   with Home Assistant's own agent, the first voice and matched languages, and refuses while an
   engine is not loaded yet (a new subentry's entities load after the flow ends); the
   `assist_pipeline/pipeline/create` websocket command is the frontend's. The pipeline store
   (`PipelineData.pipeline_store`) is what both use.
3. **Keeping a run's speech out of the TTS cache.** The pipeline creates its `ResultStream`
   (with the pipeline's options and the cache setting) when the run starts; a shared turn's
   speech is that turn's model audio, so before the message is set its `options` get a value of
   this turn alone (an earlier answer in the same words is not served from the cache) and its
   `use_file_cache` is turned off (it is not written to the cache folder).

The functions below hold these three and nothing else. `tests/test_pipeline_shim.py` checks
the names, fields and signatures they rely on, and fails when a Home Assistant release changes
them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from homeassistant.components import tts
from homeassistant.components.assist_pipeline import PipelineEvent
from homeassistant.components.assist_pipeline.pipeline import KEY_ASSIST_PIPELINE
from homeassistant.core import HomeAssistant
from homeassistant.util.ulid import ulid_now

# --- 1. the recorded runs ---------------------------------------------------------------------


def pipeline_runs(hass: HomeAssistant) -> Iterator[tuple[str, list[PipelineEvent]]]:
    """Each recorded pipeline run (the last few of each pipeline): its pipeline id and events."""
    for pipeline_id, runs in list(hass.data[KEY_ASSIST_PIPELINE].pipeline_debug.items()):
        for run in list(runs.values()):
            yield pipeline_id, run.events


# --- 2. a pipeline with given settings ------------------------------------------------------


async def create_pipeline(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """Create a pipeline with these settings (the fields of the pipeline form); its id."""
    pipeline = await hass.data[KEY_ASSIST_PIPELINE].pipeline_store.async_create_item(dict(data))
    return str(pipeline.id)


# --- 3. the TTS cache ---------------------------------------------------------------------------


def keep_out_of_tts_cache(hass: HomeAssistant, token: str, option: str) -> bool:
    """Make the speech of the stream `token` this run's own: `option` set to a fresh value, and
    no file written to the cache folder. False when the stream is gone."""
    if (stream := tts.async_get_stream(hass, token)) is None:
        return False
    stream.options[option] = ulid_now()
    stream.use_file_cache = False
    return True
