"""The face the device shows for a reply (`emotion_for`)."""

from __future__ import annotations

import pytest

from custom_components.openai_realtime_voice.bridge.emotion import EMOTIONS, emotion_for


@pytest.mark.parametrize(
    ("text", "emotion"),
    [
        ("Haha, good one!", "laughing"),
        ("Sorry, I can't reach the thermostat.", "sad"),
        ("Wow, that is a lot of rain.", "surprised"),
        ("Good night, sleep well.", "sleepy"),
        ("Great, the lights are on!", "happy"),
        ("Let me check the calendar.", "thinking"),
        ("I'm not sure what you mean.", "confused"),
        ("I love that song.", "loving"),
        ("太好了\uff0c灯已经开了。", "happy"),
        ("It is 21 degrees.", "neutral"),
    ],
)
def test_emotion_for(text: str, emotion: str) -> None:
    """The first matching cue picks one of the firmware's emotions; none keeps neutral."""
    assert emotion_for(text) == emotion
    assert emotion in EMOTIONS
