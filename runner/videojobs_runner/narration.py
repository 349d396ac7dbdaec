"""Scene narration tracks: each segment's audio laid under its animation block, with the drift measured."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from videojobs.contract import VoiceSpec
from videojobs_runner.combine import SAMPLE_RATE, Cue, _ffmpeg, build_cues
from videojobs_runner.tts import SceneNarration, audio_seconds


class BlockTiming(BaseModel):
    """One animation block and the narration spoken over it (seconds from the scene's start)."""

    text: str
    block_start: float
    block_end: float
    speech_start: float
    speech_end: float

    @property
    def drift_seconds(self) -> float:
        """How far voice and picture are apart: a late start, or speech running past the block's end."""
        return round(max(self.speech_start - self.block_start, self.speech_end - self.block_end, 0.0), 3)


class SceneTiming(BaseModel):
    """A scene's narration timing (stored as scenes/NN/timing.json)."""

    blocks: list[BlockTiming] = Field(default_factory=list)
    segment_starts: list[float] = Field(
        default_factory=list, description="Where each segment's speech starts."
    )
    video_seconds: float = 0.0
    track_seconds: float = Field(default=0.0, description="The built narration track's duration, measured.")
    max_drift_seconds: float = 0.0


def lay_out(narration: SceneNarration, blocks: Sequence[float], video_seconds: float) -> SceneTiming:
    """Place segments on the scene timeline: block k speaks segment k; the last block speaks any left over.

    Each segment starts with its block, or right after the previous segment when that one ran long.
    `blocks` are the measured block lengths; without them the whole scene is one block.
    """
    lengths = list(blocks) or [video_seconds]
    segments = narration.segments
    groups = [[segment] for segment in segments[: len(lengths) - 1]]
    groups.append(list(segments[len(lengths) - 1 :]))
    timing = SceneTiming(video_seconds=round(video_seconds, 3))
    block_start = cursor = 0.0
    for length, group in zip(lengths, groups, strict=False):
        speech_start = max(cursor, block_start)
        cursor = speech_start
        for segment in group:
            timing.segment_starts.append(round(cursor, 3))
            cursor += segment.seconds
        timing.blocks.append(
            BlockTiming(
                text=" ".join(segment.text for segment in group),
                block_start=round(block_start, 3),
                block_end=round(block_start + length, 3),
                speech_start=round(speech_start, 3),
                speech_end=round(cursor, 3),
            )
        )
        block_start += length
    timing.max_drift_seconds = max((block.drift_seconds for block in timing.blocks), default=0.0)
    return timing


def cues(narration: SceneNarration, timing: SceneTiming, tag: str) -> tuple[Cue, ...]:
    """Subtitle cues while each segment is spoken (seconds from the scene's start); long ones in chunks."""
    spans = [
        (start, min(start + segment.seconds, timing.video_seconds), segment.text)
        for segment, start in zip(narration.segments, timing.segment_starts, strict=True)
    ]
    return tuple(build_cues(spans, tag))


async def build_track(audio: Sequence[Path], timing: SceneTiming, out: Path) -> SceneTiming:
    """Mix the segment audio files at their starts into one WAV as long as the scene; measures its length."""
    inputs: list[str] = []
    chains: list[str] = []
    for index, (path, start) in enumerate(zip(audio, timing.segment_starts, strict=True)):
        inputs += ["-i", str(path)]
        delay = round(start * 1000)
        chains.append(
            f"[{index}:a:0]aresample={SAMPLE_RATE},aformat=sample_fmts=fltp:channel_layouts=mono,"
            f"adelay={delay}:all=1[s{index}]"
        )
    mix = "".join(f"[s{index}]" for index in range(len(audio)))
    chains.append(
        f"{mix}amix=inputs={len(audio)}:normalize=0:duration=longest,"
        f"apad=whole_dur={timing.video_seconds:.6f}[out]"
    )
    await _ffmpeg(
        [*inputs, "-filter_complex", ";".join(chains), "-map", "[out]", "-c:a", "pcm_s16le", str(out)],
        "build the narration track",
    )
    measured = await asyncio.to_thread(audio_seconds, out)
    return timing.model_copy(update={"track_seconds": round(measured, 3)})


def narration_summary(voice: VoiceSpec, timings: dict[int, SceneTiming]) -> dict[str, object]:
    """The job's narration for its metadata: the voice, and the drift per scene and over the whole job."""
    drifts = [block.drift_seconds for timing in timings.values() for block in timing.blocks]
    return {
        "backend": voice.backend,
        "voice": voice.voice,
        "max_drift_seconds": max(drifts, default=0.0),
        "mean_drift_seconds": round(sum(drifts) / len(drifts), 3) if drifts else 0.0,
        "scenes": [
            {
                "index": index,
                "blocks": len(timing.blocks),
                "max_drift_seconds": timing.max_drift_seconds,
                "speech_seconds": round(sum(b.speech_end - b.speech_start for b in timing.blocks), 3),
                "video_seconds": timing.video_seconds,
                "track_seconds": timing.track_seconds,
            }
            for index, timing in sorted(timings.items())
        ],
    }
