"""Home Assistant LLM tools as Realtime function tools, and their results as function output."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
import re
from typing import Any

from homeassistant.helpers import llm
from homeassistant.helpers.json import json_dumps
import probatio

from .realtime import FunctionTool

# Realtime (like the Responses API) accepts function names of letters, digits, `_` and `-`.
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME_LENGTH = 64
# JSON-schema keywords the Realtime service refuses at the top level of `parameters`.
_UNSUPPORTED_TOP_LEVEL = frozenset({"oneOf", "anyOf", "allOf", "enum", "not"})


def tool_parameters(
    schema: Any, custom_serializer: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Render a probatio/voluptuous schema as the JSON schema of a function tool."""
    parameters: dict[str, Any] = probatio.to_openapi(
        schema, custom_serializer=custom_serializer, openapi_version="3.1.0"
    )
    parameters = {k: v for k, v in parameters.items() if k not in _UNSUPPORTED_TOP_LEVEL}
    parameters.setdefault("type", "object")
    parameters.setdefault("properties", {})
    return parameters


def format_tool(
    tool: llm.Tool, custom_serializer: Callable[[Any], Any] | None, name: str | None = None
) -> FunctionTool:
    """One Home Assistant tool as a Realtime function tool."""
    return FunctionTool(
        name=name or tool.name,
        description=tool.description or "",
        parameters=tool_parameters(tool.parameters, custom_serializer),
    )


def tool_output(result: llm.ToolResult) -> str:
    """The `function_call_output` string for a tool result, as core's OpenAI agent sends it."""
    output: str = json_dumps({"data": result.data, "error": result.error})
    return output


@dataclass
class ToolNames:
    """Valid, unique Realtime function names for tool names that may contain other characters.

    Device (MCP) tools are called e.g. `self.audio_speaker.set_volume`; the service only accepts
    `[A-Za-z0-9_-]{1,64}`, so names are rewritten and mapped back when the model calls them.
    """

    _to_original: dict[str, str] = field(default_factory=dict)
    _to_function: dict[str, str] = field(default_factory=dict)

    def add(self, original: str) -> str:
        """Return the function name for `original`, creating a unique one on first sight."""
        if (existing := self._to_function.get(original)) is not None:
            return existing
        base = _INVALID_NAME_CHARS.sub("_", original)[:_MAX_NAME_LENGTH] or "tool"
        candidate, counter = base, 2
        while candidate in self._to_original:
            suffix = f"_{counter}"
            candidate = base[: _MAX_NAME_LENGTH - len(suffix)] + suffix
            counter += 1
        self._to_original[candidate] = original
        self._to_function[original] = candidate
        return candidate

    def add_all(self, originals: Iterable[str]) -> list[str]:
        """Map several names at once, keeping their order."""
        return [self.add(name) for name in originals]

    def original(self, function_name: str) -> str | None:
        """The tool name behind a function name the model called, if we issued it."""
        return self._to_original.get(function_name)
