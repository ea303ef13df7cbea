"""Scenario mode: scripted answers for offline use (`python -m realtime_server --scenario FILE`).

A YAML scenario (see `config/scenario.yaml` and `Scenario`) picks each answer from what the
client typed or said; its sentences are synthesised by espeak-ng.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
import json
from pathlib import Path
import re
from typing import Any

import yaml

from simulator.outcome import describe_output
from simulator.speech import SpeechError, synthesize

from .interfaces import Connection
from .protocol import BYTES_PER_MS
from .scripts import ScriptedCall, ScriptedResponse
from .speech_match import Features, best_match, features

# What the integration asks the model to say word for word: `Actions.async_speak` (speak,
# announce, ask) and `RealtimeEngine`'s greeting. A model does as told; the scenario too.
SAY_EXACTLY = re.compile(
    r"\bsay(?:ing)? exactly(?: this to the user, and nothing else)?:\s*(.+?)(?:\n\n|$)",
    re.IGNORECASE | re.DOTALL,
)


class ScenarioError(Exception):
    """A scenario file is missing, malformed, or its speech could not be synthesised."""


def normalize_phrase(text: str) -> str:
    """Lower-case words without punctuation, single-spaced (what `when` phrases match on)."""
    kept = "".join(c if c.isalnum() else " " for c in text.lower())
    return " ".join(kept.split())


@dataclass(slots=True)
class ScenarioRule:
    """When the user says or types one of `when`, call `call(arguments)`, then say `say`."""

    when: tuple[str, ...]
    say: str
    call: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    audio: bytes = b""
    heard: list[Features] = field(default_factory=list)
    """How each `when` phrase sounds in the scenario's voice (see speech_match.py)."""

    def matches(self, text: str) -> bool:
        """Whether one of the phrases occurs in `text` (both normalised)."""
        heard = f" {normalize_phrase(text)} "
        return any(f" {phrase} " in heard for phrase in self.when)


def _parse_rule(index: int, raw: Any) -> ScenarioRule:
    if not isinstance(raw, dict):
        raise ScenarioError(f"rule {index + 1}: expected a mapping")
    unknown = set(raw) - {"when", "say", "call", "arguments"}
    if unknown:
        raise ScenarioError(f"rule {index + 1}: unknown keys {sorted(unknown)}")
    when = raw.get("when")
    phrases = [when] if isinstance(when, str) else when
    if (
        not isinstance(phrases, list)
        or not phrases
        or not all(isinstance(p, str) and normalize_phrase(p) for p in phrases)
    ):
        raise ScenarioError(f"rule {index + 1}: `when` must be a phrase or a list of phrases")
    say, call, arguments = raw.get("say"), raw.get("call"), raw.get("arguments", {})
    if not isinstance(say, str) or not say.strip():
        raise ScenarioError(f"rule {index + 1}: `say` must be a sentence")
    if call is not None and (not isinstance(call, str) or not call):
        raise ScenarioError(f"rule {index + 1}: `call` must be a tool name")
    if not isinstance(arguments, dict):
        raise ScenarioError(f"rule {index + 1}: `arguments` must be a mapping")
    return ScenarioRule(
        when=tuple(normalize_phrase(p) for p in phrases),
        say=say.strip(),
        call=call,
        arguments=arguments,
    )


class Scenario:
    """Scripted answers for offline use, chosen from what the client sends.

    Typed text (a user `input_text` item) picks the first rule whose `when` phrase occurs in
    it. The server has no speech recognition: a spoken turn (committed audio) is compared with
    each `when` phrase as the scenario's espeak-ng voice says it (what `scripts/simulate --say`
    sends) and plays the closest rule, reporting that phrase as the input transcript; speech
    like no phrase (another voice, other words) gets `fallback` and no transcript. Without
    synthesised phrases (`load(speak=False)`) spoken turns take the rules in file order.
    A response whose instructions give a sentence to say word for word (the integration's
    speak, announce and greeting) says that sentence. A rule with `call` first answers with that
    function call; once the client returns its output, the rule's `say` follows when the tool
    worked, else `failure` with `{error}` replaced by what went wrong (synthesised then), as a
    model reads a failed tool's output and says so. Anything else gets `fallback`; a response
    with no user input yet (a greeting) gets `greeting`.
    """

    def __init__(
        self, rules: list[ScenarioRule], fallback: ScenarioRule, greeting: ScenarioRule
    ) -> None:
        """Use parsed rules; `load` builds them from a file with their speech."""
        self.rules = rules
        self.fallback = fallback
        self.greeting = greeting
        self.failure = "Sorry, that did not work: {error}"
        self.voice = "en-us"
        self.speak = False
        self.log: list[str] = []
        self._spoken: dict[int, int] = {}
        self._heard: dict[int, ScenarioRule] = {}
        self._calls: dict[str, ScenarioRule] = {}

    @classmethod
    def parse(cls, data: Any) -> tuple[Scenario, str]:
        """Build a scenario (without audio) from parsed YAML; also return the espeak voice."""
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise ScenarioError("a scenario is a mapping with a `rules` list")
        unknown = set(data) - {"rules", "fallback", "greeting", "voice", "failure"}
        if unknown:
            raise ScenarioError(f"unknown keys {sorted(unknown)}")
        rules = [_parse_rule(i, raw) for i, raw in enumerate(data["rules"])]
        if not rules:
            raise ScenarioError("a scenario needs at least one rule")
        texts = {}
        for key, default in (
            ("fallback", "Sorry, this offline demo does not know how to answer that."),
            ("greeting", "Hello! How can I help?"),
            ("voice", "en-us"),
            ("failure", "Sorry, that did not work: {error}"),
        ):
            value = data.get(key, default)
            if not isinstance(value, str) or not value.strip():
                raise ScenarioError(f"`{key}` must be text")
            texts[key] = value.strip()
        scenario = cls(
            rules,
            ScenarioRule(when=(), say=texts["fallback"]),
            ScenarioRule(when=(), say=texts["greeting"]),
        )
        scenario.failure = texts["failure"]
        scenario.voice = texts["voice"]
        return scenario, texts["voice"]

    @classmethod
    async def load(cls, path: Path, *, speak: bool = True) -> Scenario:
        """Read a YAML scenario and synthesise every sentence as 24 kHz PCM16 (espeak-ng, sox)."""
        try:
            data = yaml.safe_load(await asyncio.to_thread(path.read_text))
        except (OSError, yaml.YAMLError) as err:
            raise ScenarioError(f"cannot read {path}: {err}") from err
        scenario, voice = cls.parse(data)
        scenario.speak = speak
        if speak:
            rules = [*scenario.rules, scenario.fallback, scenario.greeting]
            try:
                audio = await asyncio.gather(
                    *(synthesize(rule.say, 24000, voice=voice) for rule in rules)
                )
            except SpeechError as err:
                raise ScenarioError(str(err)) from err
            for rule, pcm in zip(rules, audio, strict=True):
                rule.audio = pcm
            for rule in scenario.rules:
                try:
                    phrases = await asyncio.gather(
                        *(synthesize(phrase, 24000, voice=voice) for phrase in rule.when)
                    )
                except SpeechError as err:
                    raise ScenarioError(str(err)) from err
                rule.heard = [await asyncio.to_thread(features, pcm) for pcm in phrases]
        return scenario

    def match(self, text: str) -> ScenarioRule:
        """The first rule matching typed text, or the fallback."""
        return next((rule for rule in self.rules if rule.matches(text)), self.fallback)

    async def hear_speech(self, session: Connection, audio: bytes) -> str | None:
        """A spoken turn was committed: pick its rule; the transcript, if transcribing."""
        phrase: str | None
        if any(rule.heard for rule in self.rules):
            known = [(rule, i) for rule in self.rules for i in range(len(rule.heard))]
            index, score = await asyncio.to_thread(
                best_match, audio, [rule.heard[i] for rule, i in known]
            )
            if index is None:
                rule, phrase = self.fallback, None
                self.log.append(f"heard speech like no rule's phrase ({score:.1f}): fallback")
            else:
                rule, i = known[index]
                phrase = rule.when[i]
                number = self.rules.index(rule) + 1
                self.log.append(f"heard {phrase!r} ({score:.1f}), playing rule {number}")
        else:
            turn = self._spoken.get(id(session), 0)
            self._spoken[id(session)] = turn + 1
            rule = self.rules[turn % len(self.rules)]
            phrase = rule.when[0]
            self.log.append(f"heard speech, playing rule {turn % len(self.rules) + 1}")
        self._heard[id(session)] = rule
        audio_in = session.session.get("audio", {}).get("input", {})
        transcribing = (
            session.session.get("input_audio_transcription")
            if session.server.beta
            else audio_in.get("transcription")
        )
        return phrase if transcribing else None

    async def respond(
        self, session: Connection, params: dict[str, Any] | None = None
    ) -> ScriptedResponse:
        """The response to play now: a sentence the instructions give, else from the latest
        items of the conversation."""
        instructions = (params or {}).get("instructions")
        if isinstance(instructions, str) and (match := SAY_EXACTLY.search(instructions)):
            return await self._say_now(match.group(1).strip(), "as instructed")
        last = session.items.get(session.last_item_id or "", {})
        answered = last.get("type") == "function_call_output"
        rule = self._rule_for(session)
        if answered:
            ok, outcome = describe_output(str(last.get("output", "")))
            if not ok:
                return await self._failed(outcome.removeprefix("failed: "))
        if rule.call is not None and not answered:
            call_id = session.server.new_id("call")
            self._calls[call_id] = rule
            self.log.append(f"calling {rule.call} {json.dumps(rule.arguments)}")
            return ScriptedResponse(
                calls=[ScriptedCall(rule.call, json.dumps(rule.arguments), call_id)]
            )
        self.log.append(f"saying {rule.say!r}")
        chunks = max(1, len(rule.audio) // (BYTES_PER_MS * 100))  # 100 ms deltas
        return ScriptedResponse(text=rule.say, audio=rule.audio, chunks=chunks)

    async def _failed(self, error: str) -> ScriptedResponse:
        """Say what failed (the sentence is synthesised now: it names the error)."""
        text = self.failure.replace("{error}", error.rstrip(".") + ".")
        return await self._say_now(text, "the tool failed")

    async def _say_now(self, text: str, why: str) -> ScriptedResponse:
        """Say a sentence that is not in the scenario, synthesised now."""
        self.log.append(f"{why}, saying {text!r}")
        audio = b""
        if self.speak:
            try:
                audio = await synthesize(text, 24000, voice=self.voice)
            except SpeechError as err:
                self.log.append(f"cannot speak {text!r}: {err}")
        return ScriptedResponse(
            text=text, audio=audio, chunks=max(1, len(audio) // (BYTES_PER_MS * 100))
        )

    def _rule_for(self, session: Connection) -> ScenarioRule:
        items = list(session.items.values())
        if items and items[-1].get("type") == "function_call_output":
            self.log.append(f"tool output {str(items[-1].get('output'))[:300]}")
            return self._calls.pop(items[-1].get("call_id", ""), self.fallback)
        for item in reversed(items):
            if item.get("type") != "message" or item.get("role") != "user":
                continue
            for part in item.get("content") or []:
                if part.get("type") == "input_text" and isinstance(part.get("text"), str):
                    self.log.append(f"typed {part['text']!r}")
                    return self.match(part["text"])
                if part.get("type") == "input_audio":
                    return self._heard.pop(id(session), self.fallback)
        return self.greeting
