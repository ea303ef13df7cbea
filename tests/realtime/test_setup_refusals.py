"""Setup refusals are refusals of a setting, not outages (issue 28 item 4).

`realtime_server/` refuses the way the service does (realtime-protocol.md §3.1): a value
it does not take in a `session.update` is an `error` naming it in `param` (the socket stays open),
a beta-shaped update is `missing_required_parameter` `session.type`, and an unknown model opens a
session and fails its first response with `model_not_found`.
"""

from __future__ import annotations

import asyncio

import pytest

from custom_components.openai_realtime_voice.realtime import (
    Closed,
    Dialect,
    FunctionTool,
    RealtimeEndpoint,
    RealtimeProtocolError,
    RealtimeSettingRefused,
    SessionConfig,
    Setting,
    Transcription,
    async_probe,
)
from realtime_server import RealtimeServer
from tests.realtime.client_helpers import MANUAL, Recorder, make_client

BAD_TOOL = FunctionTool(name="broken", parameters={"type": "string"})


def _endpoint(server: RealtimeServer, **kwargs: object) -> RealtimeEndpoint:
    return RealtimeEndpoint(
        api_key=server.api_key,
        model=str(kwargs.pop("model", server.model)),
        base_url=server.url,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        (SessionConfig(voice="nova"), Setting.VOICE),
        (
            SessionConfig(transcription=Transcription(model="whisper-9")),
            Setting.TRANSCRIPTION_MODEL,
        ),
        (SessionConfig(tools=(BAD_TOOL,)), Setting.TOOLS),
    ],
)
async def test_probe_names_the_refused_setting(
    realtime_server: RealtimeServer, config: SessionConfig, setting: Setting
) -> None:
    """The probe sends the user's settings: the one the service refuses is named."""
    realtime_server.transcription_models = {"gpt-4o-mini-transcribe", "gpt-4o-transcribe"}
    with pytest.raises(RealtimeSettingRefused) as refused:
        await async_probe(_endpoint(realtime_server), config, timeout=2)
    assert refused.value.setting is setting
    # The default settings pass: the probe used to render them whatever the user chose.
    await async_probe(_endpoint(realtime_server), SessionConfig(), timeout=2)


async def test_probe_finds_an_unknown_model_with_one_token(
    realtime_server: RealtimeServer,
) -> None:
    """The session opens with any model; the one-token response is what finds a wrong one."""
    realtime_server.known_models = {"gpt-realtime"}
    endpoint = _endpoint(realtime_server, model="gpt-nope")
    await async_probe(endpoint, timeout=2)  # a session.update alone does not see it
    with pytest.raises(RealtimeSettingRefused, match="model_not_found") as refused:
        await async_probe(endpoint, timeout=2, check_model=True)
    assert refused.value.setting is Setting.MODEL
    check = realtime_server.of_type("response.create")[-1]["response"]
    assert check["max_output_tokens"] == 1
    assert check["conversation"] == "none"
    assert check["input"] == []
    assert check["tools"] == []
    assert check["output_modalities"] == ["text"]
    await async_probe(_endpoint(realtime_server), timeout=2, check_model=True)


async def test_beta_shape_is_a_protocol_refusal(realtime_server: RealtimeServer) -> None:
    """A flat session.update on the GA service: `missing_required_parameter` `session.type`."""
    with pytest.raises(RealtimeProtocolError, match="missing_required_parameter"):
        await async_probe(_endpoint(realtime_server, dialect=Dialect.BETA), timeout=2)


async def test_refused_setting_is_not_retried(realtime_server: RealtimeServer) -> None:
    """A voice refused in the first session.update fails connect() once, with no retries."""
    client = make_client(realtime_server, SessionConfig(voice="nova", turn_detection=None))
    try:
        with pytest.raises(RealtimeSettingRefused) as refused:
            await asyncio.wait_for(client.connect(), 5)
        assert refused.value.setting is Setting.VOICE
        assert realtime_server.connections == 1
    finally:
        await client.close()


async def test_unknown_model_ends_the_session_at_its_first_response(
    realtime_server: RealtimeServer,
) -> None:
    """`model_not_found` in a failed response.done: a refused model, no reconnect."""
    realtime_server.known_models = {"another-model"}
    client = make_client(realtime_server, MANUAL)
    await client.connect()
    recorder = Recorder(client)
    try:
        response = await asyncio.wait_for(client.create_response(), 2)
        await asyncio.wait_for(response.wait(), 2)
        assert isinstance(response.error, RealtimeSettingRefused)
        closed = await asyncio.wait_for(recorder.wait(Closed), 2)
        assert isinstance(closed.error, RealtimeSettingRefused)
        assert closed.error.setting is Setting.MODEL
        assert realtime_server.connections == 1
    finally:
        await recorder.stop()
        await client.close()
