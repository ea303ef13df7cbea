"""OpenAI Realtime Voice: Realtime speech-to-speech for Home Assistant."""
