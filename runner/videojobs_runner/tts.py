"""Narration speech (espeak-ng, a litellm speech model, or none), cached by content hash and measured."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

import av
from pydantic import BaseModel, Field

from videojobs.contract import Stage, TTSBackend, Usage, VoiceSpec
from videojobs.errors import ConfigurationError
from videojobs.storage import Storage
from videojobs_runner.combine import sentences
from videojobs_runner.llm import LLMClient

SPEECH_CACHE_PREFIX = "_cache/tts"
"""One audio file per (backend, voice, sentence), shared by all jobs; no job id starts with '_'."""

ESPEAK_INSTALL_HINT = "Install espeak-ng (`apt-get install espeak-ng`) or set TTS_BACKEND=none."
ESPEAK_VOICE_HINT = "Pick a voice that `espeak-ng --voices` lists, or another TTS backend."
SPEECH_FORMAT = "wav"


class Segment(BaseModel):
    """One spoken sentence of a scene's narration."""

    text: str
    audio_key: str = Field(description="Storage key of its audio in the shared speech cache.")
    seconds: float = Field(ge=0, description="Spoken duration, measured from the audio.")


class SceneNarration(BaseModel):
    """A scene's narration as spoken segments (stored as scenes/NN/narration.json)."""

    backend: str
    voice: str | None = None
    segments: list[Segment] = Field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        """The segments' spoken durations."""
        return [segment.seconds for segment in self.segments]


def speech_key(voice: VoiceSpec, text: str) -> str:
    """The shared cache key of a sentence spoken by `voice`: a hash of backend, voice and text."""
    digest = hashlib.sha256(json.dumps([voice.backend, voice.voice, text]).encode()).hexdigest()
    return f"{SPEECH_CACHE_PREFIX}/{digest}.{SPEECH_FORMAT}"


def audio_seconds(path: Path) -> float:
    """An audio file's duration, measured by decoding it (samples / rate)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate if stream.rate else 0.0


class Narrator:
    """Speaks narration in one language and voice, through the shared cache: each sentence only once."""

    def __init__(
        self, voice: VoiceSpec, language: str, storage: Storage, llm: LLMClient, scratch: Path
    ) -> None:
        self.voice = voice
        self.language = language
        self.storage = storage
        self.llm = llm
        self.scratch = scratch

    @property
    def enabled(self) -> bool:
        """Whether this voice speaks at all."""
        return self.voice.backend != TTSBackend.NONE

    async def narrate(self, text: str, stage: Stage) -> SceneNarration:
        """The narration split into whole sentences, each synthesised (or found in the cache) and measured."""
        segments = [await self._segment(sentence, stage) for sentence in sentences(text, self.language)]
        return SceneNarration(backend=str(self.voice.backend), voice=self.voice.voice, segments=segments)

    async def fetch(self, segment: Segment, dest: Path) -> Path:
        """A segment's audio as a local file: from the cache, or spoken again if it was evicted meanwhile."""
        if not await asyncio.to_thread(self.storage.download, segment.audio_key, dest):
            await self._synthesise(segment.text, dest, Stage.COMBINING)
            await asyncio.to_thread(self.storage.put_file, segment.audio_key, dest, f"audio/{SPEECH_FORMAT}")
        return dest

    async def _segment(self, text: str, stage: Stage) -> Segment:
        key = speech_key(self.voice, text)
        local = self.scratch / "speech" / Path(key).name
        local.parent.mkdir(parents=True, exist_ok=True)
        if not await asyncio.to_thread(self.storage.download, key, local):
            await self._synthesise(text, local, stage)
            await asyncio.to_thread(self.storage.put_file, key, local, f"audio/{SPEECH_FORMAT}")
        seconds = await asyncio.to_thread(audio_seconds, local)
        return Segment(text=text, audio_key=key, seconds=round(seconds, 3))

    async def _synthesise(self, text: str, dest: Path, stage: Stage) -> None:
        """Speak `text` into `dest`, counting the call in the job's usage."""
        if self.voice.backend == TTSBackend.ESPEAK:
            await _espeak(text, self.voice.voice, dest, stage)
            self.llm.ledger.record(stage, Usage(tts_calls=1, tts_characters=len(text)))
            return
        model = str(self.voice.backend)
        audio = await self.llm.speak(model, text, self.voice.voice, SPEECH_FORMAT, stage=stage)
        await asyncio.to_thread(dest.write_bytes, audio)


async def _espeak(text: str, voice: str | None, dest: Path, stage: Stage) -> None:
    """Speak `text` into a WAV file with espeak-ng."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise ConfigurationError(
            "espeak-ng was not found on PATH", suggestion=ESPEAK_INSTALL_HINT, stage=stage
        )
    args = [program, "-w", str(dest), *(["-v", voice] if voice else []), "--stdin"]
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate(text.encode())
    if process.returncode != 0 or not await asyncio.to_thread(dest.is_file):
        detail = stderr.decode(errors="replace").strip() or f"exit code {process.returncode}"
        raise ConfigurationError(
            f"espeak-ng could not speak the narration: {detail}", suggestion=ESPEAK_VOICE_HINT, stage=stage
        )
