"""Whether a Home Assistant tool call worked, from its result, in a few words.

Used by the simulator (results from Home Assistant's chat log) and by the offline Realtime
server's scenario (the `function_call_output` the integration sends, `{"data": ..., "error": ...}`
as `tools.tool_output` makes it), so both judge a result the same way.
"""

from __future__ import annotations

import json
from typing import Any


def describe_result(result: dict[str, Any]) -> tuple[bool, str]:
    """Whether a tool result (`llm.ToolResult` as a dict) is a success, and a short outcome.

    A tool fails when the result says `error`, when an intent answered with an error response,
    or when some of its targets failed (`data.failed`).
    """
    data = result.get("data") if isinstance(result.get("data"), dict) else {}
    assert isinstance(data, dict)
    if result.get("error"):
        message = data.get("error_text") or data.get("error") or "failed"
        return False, f"failed: {message}"
    if data.get("response_type") == "error":
        speech = (data.get("speech") or {}).get("plain", {}).get("speech")
        return False, f"failed: {speech or (data.get('data') or {}).get('code', 'error')}"
    details = data.get("data") if isinstance(data.get("data"), dict) else {}
    assert isinstance(details, dict)
    failed = details.get("failed") or []
    if failed:
        names = ", ".join(str(t.get("name") or t.get("id")) for t in failed if isinstance(t, dict))
        return False, f"failed: not done for {names}"
    done = details.get("success") or []
    if done:
        names = ", ".join(str(t.get("id") or t.get("name")) for t in done if isinstance(t, dict))
        return True, f"done: {names}"
    return True, "done"


def describe_output(output: str) -> tuple[bool, str]:
    """`describe_result` for a `function_call_output` string (not JSON: a failure)."""
    try:
        result = json.loads(output)
    except ValueError:
        return False, "failed: the tool output is not JSON"
    if not isinstance(result, dict):
        return False, "failed: the tool output is not an object"
    return describe_result(result)
