"""A protocol-faithful OpenAI Realtime server on 127.0.0.1: the stand-in for the service.

It speaks the GA WebSocket protocol (or the legacy beta shape), validates every client event
against the `openai` SDK models with an unknown-key walk, validates every event it sends, and
plays scripted model responses (text, audio, transcripts, tool calls, cancellations, errors).
Violations are recorded in `server.violations`; the tests' `realtime_server` fixture
(tests/conftest.py) fails the test on teardown when any were seen.

The modules, by concern:
- `protocol`: SDK validation, the session's shape, PCM16 helpers, images.
- `session`: one connection (server VAD, commits, items, response.create/cancel).
- `scripts`: scripted responses (what the model answers) and a response in progress.
- `interfaces`: what the session, responses, refusals and scenario use of one another.
- `responses`: how the service streams a scripted response.
- `refusals`: the setup refusals the service sends (realtime-protocol.md §3.1).
- `discipline`: how the service ends, refuses or tags sessions (clocks, drops, 429s).
- `server`: `RealtimeServer`, the handshake and the test controls.
- `scenario` (with `speech_match`): scripted answers for offline use.
- `cli`: `python -m realtime_server --port 8765 --scenario config/scenario.yaml` answers
  from a YAML scenario with speech synthesised by espeak-ng.

It is a development tool: not part of the integration, nor of its release.
"""

from .discipline import ServiceDiscipline
from .protocol import (
    API_KEY,
    client_event_problems,
    default_session,
    server_event_problems,
    silence,
    tone,
)
from .scenario import Scenario, ScenarioError, normalize_phrase
from .scripts import ScriptedCall, ScriptedResponse, default_usage
from .server import RealtimeServer, closed_port_url

__all__ = [
    "API_KEY",
    "RealtimeServer",
    "Scenario",
    "ScenarioError",
    "ScriptedCall",
    "ScriptedResponse",
    "ServiceDiscipline",
    "client_event_problems",
    "closed_port_url",
    "default_session",
    "default_usage",
    "normalize_phrase",
    "server_event_problems",
    "silence",
    "tone",
]
