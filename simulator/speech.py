"""Speech audio for the simulators: espeak-ng synthesis, sox resampling and WAV files.

Both tools are external programs (Debian packages `espeak-ng` and `sox`, installed by
`scripts/setup`); they run as subprocesses so the event loop never blocks on them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
import shutil
import wave


class SpeechError(Exception):
    """Synthesis failed: a tool is missing, failed, or produced no audio."""


async def _run(argv: list[str], stdin: bytes | None = None) -> bytes:
    """Run one program, feeding `stdin`; return its stdout or raise `SpeechError`."""
    if shutil.which(argv[0]) is None:
        raise SpeechError(f"{argv[0]} is not installed (run scripts/setup)")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip()[:200]
        raise SpeechError(f"{argv[0]} failed ({proc.returncode}): {message}")
    return out


async def synthesize(text: str, rate: int, *, voice: str = "en-us") -> bytes:
    """Speak `text` with espeak-ng and return it as mono PCM16 at `rate` Hz (resampled by sox)."""
    if not text.strip():
        raise SpeechError("nothing to say")
    wav = await _run(["espeak-ng", "-v", voice, "--stdout", "--", text])
    raw = ["-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1", "-"]
    pcm = await _run(["sox", "-q", "-t", "wav", "-", *raw], stdin=wav)
    if not pcm:
        raise SpeechError("the synthesiser produced no audio")
    return pcm


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    """Save mono PCM16 as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
