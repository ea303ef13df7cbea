"""Tests for the protocol-faithful Realtime test server itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from realtime_server import (
    RealtimeServer,
    ScriptedCall,
    ScriptedResponse,
    client_event_problems,
    server_event_problems,
    silence,
    tone,
)


@pytest.fixture
async def ws(realtime_server: RealtimeServer) -> AsyncGenerator[ClientConnection]:
    """A raw client connected to the server, past session.created."""
    url = realtime_server.url.replace("http", "ws") + "/realtime?model=gpt-realtime"
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {realtime_server.api_key}"}
    ) as client:
        created = json.loads(await client.recv())
        assert created["type"] == "session.created"
        yield client


async def _recv_until(client: ClientConnection, kind: str) -> list[dict[str, Any]]:
    events = []
    while True:
        event = json.loads(await client.recv())
        events.append(event)
        if event["type"] == kind:
            return events


async def test_session_created_is_full_ga_session(realtime_server: RealtimeServer) -> None:
    """session.created carries a complete GA session that validates against the SDK."""
    url = realtime_server.url.replace("http", "ws") + "/realtime?model=gpt-realtime"
    async with connect(url, additional_headers={"api-key": realtime_server.api_key}) as client:
        created = json.loads(await client.recv())
    assert not server_event_problems(created)
    session = created["session"]
    assert session["type"] == "realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["voice"] == "alloy"


async def test_accept_delay_holds_session_created(realtime_server: RealtimeServer) -> None:
    """`accept_delay` models the real service's 0.3-0.8 s from connect to a session."""
    realtime_server.accept_delay = 0.3
    url = realtime_server.url.replace("http", "ws") + "/realtime?model=gpt-realtime"
    loop = asyncio.get_running_loop()
    async with connect(url, additional_headers={"api-key": realtime_server.api_key}) as client:
        opened = loop.time()
        created = json.loads(await client.recv())
        waited = loop.time() - opened
    assert created["type"] == "session.created"
    assert waited >= 0.3


async def test_session_update_merges(ws: ClientConnection, realtime_server: RealtimeServer) -> None:
    """Only present fields change; session.updated reports the full effective session."""
    await ws.send(
        json.dumps(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "instructions": "be brief",
                    "audio": {"output": {"voice": "marin"}},
                },
            }
        )
    )
    updated = json.loads(await ws.recv())
    assert updated["type"] == "session.updated"
    session = updated["session"]
    assert session["instructions"] == "be brief"
    assert session["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "marin",
        "speed": 1.0,
    }
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert realtime_server.received[0]["type"] == "session.update"


async def test_unknown_key_rejected(ws: ClientConnection, realtime_server: RealtimeServer) -> None:
    """A beta key in a GA event is answered with an error carrying the client's event_id."""
    await ws.send(
        json.dumps(
            {
                "type": "session.update",
                "event_id": "evt_1",
                "session": {"type": "realtime", "temperature": 0.8},
            }
        )
    )
    error = json.loads(await ws.recv())
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["event_id"] == "evt_1"
    assert "temperature" in error["error"]["message"]
    assert realtime_server.violations
    assert not realtime_server.received
    realtime_server.violations.clear()


async def test_invalid_json_recorded(ws: ClientConnection, realtime_server: RealtimeServer) -> None:
    """Non-JSON frames are violations."""
    await ws.send("not json")
    error = json.loads(await ws.recv())
    assert error["error"]["code"] == "invalid_json"
    assert realtime_server.violations
    realtime_server.violations.clear()


def test_client_event_problems() -> None:
    """The validator catches the classic mistakes and accepts good events."""
    assert not client_event_problems({"type": "response.create"})
    assert client_event_problems({"type": "response.audio.delta", "delta": ""})
    assert client_event_problems(
        {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0}
    )
    assert client_event_problems(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}},
            },
        }
    )
    assert not client_event_problems(
        {"type": "session.update", "session": {"modalities": ["text"]}}, beta=True
    )


async def test_wrong_path_and_missing_model(realtime_server: RealtimeServer) -> None:
    """Only .../realtime?model= is served."""
    headers = {"Authorization": f"Bearer {realtime_server.api_key}"}
    base = realtime_server.url.replace("http", "ws")
    for url in (base + "/other?model=m", base + "/realtime"):
        with pytest.raises(Exception, match="HTTP"):
            async with connect(url, additional_headers=headers):
                pass


async def test_scripted_audio_response(
    ws: ClientConnection, realtime_server: RealtimeServer
) -> None:
    """A scripted audio response streams audio and transcript deltas, then response.done."""
    realtime_server.script(ScriptedResponse(text="Hi there", audio=silence(100)))
    await ws.send(json.dumps({"type": "response.create"}))
    events = await _recv_until(ws, "response.done")
    kinds = [event["type"] for event in events]
    assert kinds.count("response.output_audio.delta") == 2
    assert "response.output_audio_transcript.done" in kinds
    assert events[-1]["response"]["status"] == "completed"


async def test_active_response_error(ws: ClientConnection, realtime_server: RealtimeServer) -> None:
    """A second response.create while one is active is rejected, like the service does."""
    hold = realtime_server.responses
    realtime_server.script(ScriptedResponse(text="x", hold=(release := _event())))
    await ws.send(json.dumps({"type": "response.create"}))
    await _recv_until(ws, "response.output_audio_transcript.delta")
    await ws.send(json.dumps({"type": "response.create", "event_id": "evt_2"}))
    error = (await _recv_until(ws, "error"))[-1]
    assert error["error"]["code"] == "conversation_already_has_active_response"
    release.set()
    await _recv_until(ws, "response.done")
    assert not hold


def _event() -> Any:
    import asyncio

    return asyncio.Event()


async def test_cancel_with_late_deltas(
    ws: ClientConnection, realtime_server: RealtimeServer
) -> None:
    """A cancelled response sends late deltas, then response.done cancelled."""
    realtime_server.script(
        ScriptedResponse(text="long", audio=silence(200), hold=_event(), late_deltas=2)
    )
    await ws.send(json.dumps({"type": "response.create"}))
    await _recv_until(ws, "response.output_audio_transcript.delta")
    await ws.send(json.dumps({"type": "response.cancel"}))
    events = await _recv_until(ws, "response.done")
    assert [e["type"] for e in events].count("response.output_audio.delta") >= 2
    assert events[-1]["response"]["status"] == "cancelled"
    assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    await ws.send(json.dumps({"type": "response.cancel", "event_id": "c2"}))
    error = (await _recv_until(ws, "error"))[-1]
    assert error["error"]["code"] == "response_cancel_not_active"


async def test_truncate(ws: ClientConnection, realtime_server: RealtimeServer) -> None:
    """Truncation beyond the received audio is an error; within it succeeds."""
    realtime_server.script(ScriptedResponse(text="a", audio=silence(100)))
    await ws.send(json.dumps({"type": "response.create"}))
    done = (await _recv_until(ws, "response.done"))[-1]
    item_id = done["response"]["output"][0]["id"]
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    await ws.send(json.dumps({**truncate, "audio_end_ms": 500}))
    error = (await _recv_until(ws, "error"))[-1]
    assert "shorter" in error["error"]["message"]
    await ws.send(json.dumps({**truncate, "audio_end_ms": 50}))
    truncated = (await _recv_until(ws, "conversation.item.truncated"))[-1]
    assert truncated["audio_end_ms"] == 50
    await ws.send(json.dumps({**truncate, "item_id": "nope", "audio_end_ms": 1}))
    assert (await _recv_until(ws, "error"))[-1]["error"]["code"] == "invalid_value"


async def test_function_calls(ws: ClientConnection, realtime_server: RealtimeServer) -> None:
    """Scripted calls stream arguments and complete items."""
    realtime_server.script(
        ScriptedResponse(calls=[ScriptedCall("HassTurnOn", '{"name":"kitchen"}', call_id="c1")])
    )
    await ws.send(json.dumps({"type": "response.create"}))
    events = await _recv_until(ws, "response.done")
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done[0]["arguments"] == '{"name":"kitchen"}'
    assert events[-1]["response"]["output"][0]["status"] == "completed"


async def test_vad_and_commit(ws: ClientConnection, realtime_server: RealtimeServer) -> None:
    """Loud audio starts speech, silence stops it, commits and creates a response."""
    import base64

    realtime_server.user_transcript = "turn on the light"
    for pcm in (silence(100), tone(200), silence(300)):
        await ws.send(
            json.dumps(
                {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
            )
        )
    events = await _recv_until(ws, "response.done")
    kinds = [e["type"] for e in events]
    assert kinds[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    assert events[0]["audio_start_ms"] == 100
    assert "conversation.item.input_audio_transcription.completed" in kinds
    await ws.send(json.dumps({"type": "input_audio_buffer.commit", "event_id": "e"}))
    assert (await _recv_until(ws, "error"))[-1]["error"][
        "code"
    ] == "input_audio_buffer_commit_empty"
    await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
    await _recv_until(ws, "input_audio_buffer.cleared")


async def test_beta_server(socket_enabled: None) -> None:
    """The beta server validates the flat session and sends beta event names."""
    server = RealtimeServer(beta=True)
    await server.start()
    try:
        url = server.url.replace("http", "ws") + "/realtime?model=m"
        headers = {"Authorization": f"Bearer {server.api_key}"}
        async with connect(url, additional_headers=headers) as client:
            created = json.loads(await client.recv())
            assert created["session"]["modalities"] == ["text", "audio"]
            await client.send(
                json.dumps({"type": "session.update", "session": {"modalities": ["text"]}})
            )
            assert json.loads(await client.recv())["session"]["modalities"] == ["text"]
            server.script(ScriptedResponse(text="hello"))
            await client.send(json.dumps({"type": "response.create"}))
            kinds = [e["type"] for e in await _recv_until(client, "response.done")]
        assert "response.text.delta" in kinds
        assert "conversation.item.created" in kinds
        assert "conversation.item.done" not in kinds
        assert not server.violations
    finally:
        await server.stop()


# -- behaviours of the real service (issue 19) ---------------------------------------------------


def _append(pcm: bytes) -> str:
    import base64

    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    )


async def test_vad_interrupts_only_the_default_conversation(
    ws: ClientConnection, realtime_server: RealtimeServer
) -> None:
    """Server VAD cancels the default conversation's response; an out-of-band one runs on.

    SDK docstring of ServerVad.interrupt_response: it cancels "any ongoing response with output
    to the default conversation (i.e. `conversation` of `auto`)". ResponseCreateEvent: "Only
    one Response can write to the default Conversation at a time, but otherwise multiple
    Responses can be created in parallel". Out-of-band items are not in the conversation, so
    truncating one is an error.
    """
    import asyncio

    aside, reply = asyncio.Event(), asyncio.Event()
    realtime_server.script(
        ScriptedResponse(text="aside", audio=silence(100), hold=aside),
        ScriptedResponse(text="reply", audio=silence(100), hold=reply),
    )
    await ws.send(
        json.dumps(
            {
                "type": "response.create",
                "response": {"conversation": "none", "metadata": {"k": "1"}},
            }
        )
    )
    oob_item = (await _recv_until(ws, "response.output_audio.delta"))[-1]["item_id"]
    await ws.send(json.dumps({"type": "response.create"}))  # parallel: accepted
    events = await _recv_until(ws, "response.output_audio_transcript.delta")
    assert "error" not in [e["type"] for e in events]
    await ws.send(_append(tone(100)))
    events = await _recv_until(ws, "response.done")
    done = events[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"]["reason"] == "turn_detected"
    assert done["output"][0]["id"] != oob_item
    truncate = {
        "type": "conversation.item.truncate",
        "event_id": "evt_t",
        "item_id": oob_item,
        "content_index": 0,
        "audio_end_ms": 10,
    }
    await ws.send(json.dumps(truncate))
    error = (await _recv_until(ws, "error"))[-1]["error"]
    assert error["code"] == "item_truncate_invalid_item_id"
    assert error["event_id"] == "evt_t"
    aside.set()
    done = (await _recv_until(ws, "response.done"))[-1]["response"]
    assert done["status"] == "completed"
    assert done["metadata"] == {"k": "1"}
    assert done["conversation_id"] is None
    assert oob_item not in realtime_server.session.items


async def test_response_create_rejections(
    ws: ClientConnection, realtime_server: RealtimeServer
) -> None:
    """response.create fails for more than an active response, naming the client's event_id.

    SDK RealtimeError.event_id: "The event_id of the client event that caused the error".
    """
    unknown_voice = {"audio": {"output": {"voice": "nobody"}}}
    bad_tool = {"tools": [{"type": "function", "name": "f", "parameters": {"type": "string"}}]}
    realtime_server.reject_responses.append(("rate_limit_exceeded", "Rate limit reached"))
    for event_id, params, code in (
        ("evt_1", {}, "rate_limit_exceeded"),
        ("evt_2", unknown_voice, "invalid_value"),
        ("evt_3", bad_tool, "invalid_function_parameters"),
    ):
        await ws.send(
            json.dumps({"type": "response.create", "event_id": event_id, "response": params})
        )
        error = (await _recv_until(ws, "error"))[-1]["error"]
        assert (error["code"], error["event_id"]) == (code, event_id)
    assert realtime_server.response_params == []


@pytest.mark.parametrize("after", [False, True])
async def test_input_transcript_before_or_after_the_response(
    ws: ClientConnection, realtime_server: RealtimeServer, after: bool
) -> None:
    """The input transcript may come before or after the turn's response events.

    SDK docstring of ConversationItemInputAudioTranscriptionCompletedEvent: transcription
    "runs asynchronously with Response creation, so this event may come before or after the
    Response events".
    """
    realtime_server.user_transcript = "hello"
    realtime_server.transcript_after_response = after
    for pcm in (tone(200), silence(300)):
        await ws.send(_append(pcm))
    events = await _recv_until(ws, "conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    assert ("response.done" in kinds) is after
    if not after:
        await _recv_until(ws, "response.done")


async def test_failed_response_carries_its_cause_then_rate_limits(
    ws: ClientConnection, realtime_server: RealtimeServer
) -> None:
    """A failed response names its cause in status_details.error; rate_limits.updated follows.

    SDK RealtimeResponseStatus.error: "A description of the error that caused the response to
    fail, populated when the `status` is `failed`".
    """
    cause = {"type": "insufficient_quota", "code": "insufficient_quota"}
    realtime_server.script(ScriptedResponse(status="failed", error=cause))
    await ws.send(json.dumps({"type": "response.create"}))
    done = (await _recv_until(ws, "response.done"))[-1]
    assert done["response"]["status_details"] == {"type": "failed", "error": cause}
    limits = json.loads(await ws.recv())
    assert limits["type"] == "rate_limits.updated"
    assert not server_event_problems(limits)


async def test_session_expires_at(realtime_server: RealtimeServer) -> None:
    """session.created carries expires_at; at that moment the session ends (error, close 1001)."""
    import time

    realtime_server.session_lifetime = 0.3
    url = realtime_server.url.replace("http", "ws") + "/realtime?model=gpt-realtime"
    headers = {"Authorization": f"Bearer {realtime_server.api_key}"}
    async with connect(url, additional_headers=headers) as client:
        created = json.loads(await client.recv())
        assert created["session"]["expires_at"] == pytest.approx(time.time() + 0.3, abs=1.5)
        error = json.loads(await client.recv())
        assert error["error"]["code"] == "session_expired"
        await client.wait_closed()
    assert client.close_code == 1001


async def test_beta_header_is_refused_then_closed(realtime_server: RealtimeServer) -> None:
    """The beta header gets an error event, then close 4000 (realtime-protocol.md §1.2)."""
    url = realtime_server.url.replace("http", "ws") + "/realtime?model=gpt-realtime"
    headers = {"Authorization": f"Bearer {realtime_server.api_key}", "OpenAI-Beta": "realtime=v1"}
    async with connect(url, additional_headers=headers) as client:
        first = json.loads(await client.recv())
        assert first["type"] == "error"
        assert first["error"]["code"] == "beta_api_shape_disabled"
        await client.wait_closed()
    assert client.close_code == 4000


async def test_setup_refusals_keep_the_socket_open(realtime_server: RealtimeServer) -> None:
    """Refusals as the service sends them (realtime-protocol.md §3.1), the socket stays open.

    A flat session.update: `missing_required_parameter` `session.type` (TanStack/ai#586); a
    voice or transcription model it does not take: `invalid_value` naming the field; an unknown
    model: the session opens and its first response fails with `model_not_found`
    (openai-realtime-console#561).
    """
    realtime_server.known_models = {"gpt-realtime"}
    realtime_server.transcription_models = {"gpt-4o-mini-transcribe"}
    url = realtime_server.url.replace("http", "ws") + "/realtime?model=gpt-nope"
    headers = {"Authorization": f"Bearer {realtime_server.api_key}"}
    updates = [
        ({"modalities": ["text"]}, "missing_required_parameter", "session.type"),
        (
            {"type": "realtime", "audio": {"output": {"voice": "nova"}}},
            "invalid_value",
            "session.audio.output.voice",
        ),
        (
            {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-9"}}}},
            "invalid_value",
            "session.audio.input.transcription.model",
        ),
    ]
    async with connect(url, additional_headers=headers) as client:
        assert json.loads(await client.recv())["type"] == "session.created"
        for session, code, param in updates:
            await client.send(json.dumps({"type": "session.update", "session": session}))
            error = json.loads(await client.recv())
            assert error["type"] == "error"
            assert (error["error"]["code"], error["error"]["param"]) == (code, param)
        await client.send(json.dumps({"type": "response.create"}))
        assert json.loads(await client.recv())["type"] == "response.created"
        while (done := json.loads(await client.recv()))["type"] != "response.done":
            pass
        assert done["response"]["status"] == "failed"
        assert done["response"]["status_details"]["error"]["code"] == "model_not_found"
        # Custom voices are taken.
        custom = {"type": "realtime", "audio": {"output": {"voice": {"id": "voice_123"}}}}
        await client.send(json.dumps({"type": "session.update", "session": custom}))
        while json.loads(await client.recv())["type"] != "session.updated":
            pass
        assert client.close_code is None
    # The flat update is a client mistake on purpose here.
    realtime_server.violations.clear()


async def test_vad_without_interrupt_creates_no_second_response(
    ws: ClientConnection, realtime_server: RealtimeServer
) -> None:
    """With `interrupt_response: false` a turn that ends while the model responds gets no reply.

    SDK docstring of ServerVad: "If `interrupt_response` is set to `false` this may fail to
    create a response if the model is already responding."
    """
    import asyncio

    detection = {"type": "server_vad", "silence_duration_ms": 200, "interrupt_response": False}
    update = {"type": "realtime", "audio": {"input": {"turn_detection": detection}}}
    await ws.send(json.dumps({"type": "session.update", "session": update}))
    await _recv_until(ws, "session.updated")
    release = asyncio.Event()
    realtime_server.script(ScriptedResponse(text="busy", hold=release))
    await ws.send(json.dumps({"type": "response.create"}))
    await _recv_until(ws, "response.output_audio_transcript.delta")
    for pcm in (tone(100), silence(300)):
        await ws.send(_append(pcm))
    events = await _recv_until(ws, "conversation.item.done")  # the committed user turn
    assert "response.created" not in [e["type"] for e in events]
    release.set()
    done = (await _recv_until(ws, "response.done"))[-1]
    assert done["response"]["status"] == "completed"
    assert realtime_server.responses_done == 1
    assert len(realtime_server.response_params) == 1
