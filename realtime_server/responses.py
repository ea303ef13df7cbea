"""How the service plays a scripted model response (`scripts.ScriptedResponse`) on the wire.

`run_response` plays one on a connection the way the service streams it: `response.created`,
the output items with their deltas, `response.done`, then `rate_limits.updated`.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from .interfaces import Connection
from .protocol import BYTES_PER_MS, RATE_LIMITS, silence
from .scripts import Running, ScriptedResponse, default_usage


def _chunks(data: Any, count: int) -> list[Any]:
    if not data:
        return []
    count = max(1, min(count, len(data)))
    size = -(-len(data) // count)
    return [data[i : i + size] for i in range(0, len(data), size)]


async def run_response(
    session: Connection, script: ScriptedResponse, params: dict[str, Any], running: Running
) -> None:
    """Play a response on `session`; it leaves the session's running responses when done."""
    try:
        await _play_response(session, script, params, running)
    finally:
        session.running.pop(running.id, None)


async def _play_response(
    session: Connection, script: ScriptedResponse, params: dict[str, Any], running: Running
) -> None:
    response_id = running.id
    in_conversation = not running.out_of_band
    modalities = params.get("output_modalities") or session.output_modalities
    if session.server.beta:
        modalities = params.get("modalities") or session.session["modalities"]
    audio_out = "audio" in modalities
    output: list[dict[str, Any]] = []
    status = script.status

    def base() -> dict[str, Any]:
        return {"response_id": response_id}

    await session.send(
        {
            "type": "response.created",
            "response": {
                "id": response_id,
                "object": "realtime.response",
                "status": "in_progress",
                "output": [],
                "metadata": session.server.discipline.metadata(params),
            },
        }
    )
    if session.server.response_delay:
        await asyncio.sleep(session.server.response_delay)  # the model's time to first output
    if script.text or script.audio:
        index = len(output)
        item_id = session.server.new_id("item")
        item: dict[str, Any] = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "object": "realtime.item",
            "status": "in_progress",
            "content": [],
        }
        output.append(item)
        where = {**base(), "item_id": item_id, "output_index": index, "content_index": 0}
        await session.send(
            {
                "type": "response.output_item.added",
                **base(),
                "output_index": index,
                "item": item,
            }
        )
        await _output_item_added(session, item, in_conversation)
        part_type = "audio" if audio_out else "text"
        await session.send(
            {"type": "response.content_part.added", **where, "part": {"type": part_type}}
        )
        if audio_out:
            if in_conversation:
                session.audio_ms[item_id] = 0
            for pcm in _chunks(script.audio, script.chunks):
                if in_conversation:
                    session.audio_ms[item_id] += len(pcm) // BYTES_PER_MS
                await session.send(
                    {
                        "type": "response.output_audio.delta",
                        **where,
                        "delta": base64.b64encode(pcm).decode(),
                    }
                )
            for piece in _chunks(script.text, script.chunks):
                await session.send(
                    {"type": "response.output_audio_transcript.delta", **where, "delta": piece}
                )
        else:
            for piece in _chunks(script.text, script.chunks):
                await session.send({"type": "response.output_text.delta", **where, "delta": piece})
        if await _hold(script, running):
            for _ in range(script.late_deltas):
                await session.send(
                    {
                        "type": "response.output_audio.delta",
                        **where,
                        "delta": base64.b64encode(silence(20)).decode(),
                    }
                )
            status = "cancelled"
        if audio_out:
            await session.send({"type": "response.output_audio.done", **where})
            await session.send(
                {
                    "type": "response.output_audio_transcript.done",
                    **where,
                    "transcript": script.text,
                }
            )
            content = {"type": _content_type(session, "output_audio"), "transcript": script.text}
        else:
            await session.send({"type": "response.output_text.done", **where, "text": script.text})
            content = {"type": _content_type(session, "output_text"), "text": script.text}
        await session.send(
            {"type": "response.content_part.done", **where, "part": {"type": part_type}}
        )
        item["status"] = "completed" if status != "cancelled" else "incomplete"
        item["content"] = [content]
        await session.send(
            {"type": "response.output_item.done", **base(), "output_index": index, "item": item}
        )
        if not session.server.beta and in_conversation:
            await session.send({"type": "conversation.item.done", "item": item})
    elif not script.calls and await _hold(script, running):
        status = "cancelled"
    for call in script.calls:
        index = len(output)
        item_id = session.server.new_id("item")
        call_id = call.call_id or session.server.new_id("call")
        item = {
            "id": item_id,
            "type": "function_call",
            "object": "realtime.item",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        output.append(item)
        await session.send(
            {
                "type": "response.output_item.added",
                **base(),
                "output_index": index,
                "item": item,
            }
        )
        await _output_item_added(session, item, in_conversation)
        where = {**base(), "item_id": item_id, "output_index": index, "call_id": call_id}
        for piece in _chunks(call.arguments, 2):
            await session.send(
                {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            )
        if call is script.calls[-1] and await _hold(script, running):
            status = "cancelled"
        item_status = call.status if status != "cancelled" else "incomplete"
        await session.send(
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": call.name,
                "arguments": call.arguments,
            }
        )
        item = {**item, "status": item_status, "arguments": call.arguments}
        output[index] = item
        if in_conversation:
            session.items[item_id] = item
        await session.send(
            {"type": "response.output_item.done", **base(), "output_index": index, "item": item}
        )
        if not session.server.beta and in_conversation:
            await session.send({"type": "conversation.item.done", "item": item})
    response: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "output": output,
        "usage": script.usage if script.usage is not None else default_usage(),
        "metadata": session.server.discipline.metadata(params),
    }
    if status == "cancelled":
        response["status_details"] = {
            "type": "cancelled",
            "reason": running.reason or "client_cancelled",
        }
    elif status == "failed":
        response["status_details"] = {
            "type": "failed",
            "error": script.error or {"type": "server_error", "code": "server_error"},
        }
    elif status == "incomplete":
        response["status_details"] = {"type": "incomplete", "reason": "max_output_tokens"}
    if params.get("conversation") is not None:
        response["conversation_id"] = None if running.out_of_band else "conv_default"
    session.running.pop(response_id, None)
    await session.send({"type": "response.done", "response": response})
    session.server.responses_done += 1
    session.server.changes.notify()
    # The service reports the (adjusted) limits once a response is done; the SDK docstring
    # of RateLimitsUpdatedEvent says "at the beginning of a Response", observed traffic has
    # it after response.done: clients must not rely on its position.
    await session.send({"type": "rate_limits.updated", "rate_limits": RATE_LIMITS})
    pending, session.pending_transcripts = session.pending_transcripts, []
    if pending:
        tail = asyncio.create_task(session.send_later(pending, session.server.transcript_delay))
        session.tails.add(tail)
        tail.add_done_callback(session.tails.discard)


async def _output_item_added(
    session: Connection, item: dict[str, Any], in_conversation: bool
) -> None:
    """An output item joins the conversation, or stays out of it (out-of-band response)."""
    if not in_conversation:
        session.out_of_band_items.add(item["id"])
        return
    previous = session.add_item(item)
    await session.send(
        {"type": "conversation.item.added", "item": item, "previous_item_id": previous}
    )


def _content_type(session: Connection, ga: str) -> str:
    return ga.removeprefix("output_") if session.server.beta else ga


async def _hold(script: ScriptedResponse, running: Running) -> bool:
    """Wait for the script's hold event; return True when the response got cancelled."""
    if running.cancelled.is_set():
        return True
    if script.hold is None:
        return False
    waiters = [
        asyncio.ensure_future(script.hold.wait()),
        asyncio.ensure_future(running.cancelled.wait()),
    ]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return running.cancelled.is_set()
