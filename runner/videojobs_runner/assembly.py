"""The assembly stages: narrated scene clips combined into the video, stored with its companions."""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from pathlib import Path

from videojobs.artifacts import (
    METADATA_FILE,
    SUBTITLES_SRT_FILE,
    SUBTITLES_VTT_FILE,
    THUMBNAIL_FILE,
    VIDEO_FILE,
    SceneFiles,
)
from videojobs.contract import Stage, utcnow
from videojobs.errors import StorageError
from videojobs.plans import SceneOutline, ScenePlan, VideoOutline
from videojobs_runner.combine import CombinedVideo, SceneClip, combine_scenes, finish, probe
from videojobs_runner.context import JobContext
from videojobs_runner.narration import SceneTiming, build_track, cues, lay_out, narration_summary
from videojobs_runner.render_cache import combine_key
from videojobs_runner.revision import revised_scenes
from videojobs_runner.scenes import SceneRender
from videojobs_runner.tts import SceneNarration


class Assembly:
    """Combining and storage of one job."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.timings: dict[int, SceneTiming] = {}
        self.language = ctx.job.request.language

    async def run(self, outline: VideoOutline) -> None:
        """Narrate and combine the stored scene renders, then store the video and its companions."""
        await self.ctx.tracker.enter(Stage.COMBINING)
        clips = await asyncio.gather(  # each scene's own ffprobe/ffmpeg runs, side by side
            *(self._clip(index, scene) for index, scene in enumerate(outline.scenes, 1))
        )
        combined = await self._combined(list(clips))
        delivery = self.ctx.job.request.delivery
        video = await finish(
            combined.video,
            combined.video.with_name("video.tagged.mp4"),
            tag=self.language,
            chapters=combined.chapters if delivery.chapters else [],
            srt=combined.subtitles_srt if delivery.subtitles else None,
        )
        await self.ctx.tracker.enter(Stage.STORAGE)
        files = [(VIDEO_FILE, video)]
        if delivery.thumbnail:
            files.append((THUMBNAIL_FILE, combined.thumbnail))
        if delivery.subtitles:
            files.append((SUBTITLES_SRT_FILE, combined.subtitles_srt))
            files.append((SUBTITLES_VTT_FILE, combined.subtitles_vtt))
        for name, path in files:
            await asyncio.to_thread(self.ctx.artifacts.save_file, name, path)
        metadata = self._metadata(outline, combined) | self._quality_report(len(outline.scenes))
        self.ctx.artifacts.storage.put_bytes(
            self.ctx.artifacts.key(METADATA_FILE), json.dumps(metadata, indent=2).encode(), "application/json"
        )

    async def _clip(self, index: int, scene: SceneOutline) -> SceneClip:
        """Scene `index`'s render fetched from storage, with its narration track."""
        local = self.ctx.scratch / "combine" / f"scene_{index:02d}.mp4"
        local.parent.mkdir(parents=True, exist_ok=True)
        if not await asyncio.to_thread(self.ctx.artifacts.fetch_file, SceneFiles(index).video, local):
            raise StorageError(f"the render of scene {index} is missing from storage", recoverable=True)
        plan = self.ctx.artifacts.load_model(SceneFiles(index).plan, ScenePlan)
        return await self._voiced(index, local, scene.title, plan.narration if plan else "")

    async def _voiced(self, index: int, video: Path, title: str, text: str) -> SceneClip:
        """A scene clip with its narration track laid under its blocks, and its timing stored."""
        narration = self.ctx.artifacts.load_model(SceneFiles(index).narration, SceneNarration)
        render = self.ctx.artifacts.load_model(SceneFiles(index).render, SceneRender)
        if narration is None or not narration.segments or render is None:
            return SceneClip(video=video, title=title, narration=text)
        workdir = video.parent / f"narration_{index:02d}"
        workdir.mkdir(parents=True, exist_ok=True)
        audio = [
            await self.ctx.narrator.fetch(segment, workdir / f"segment_{n:02d}.wav")
            for n, segment in enumerate(narration.segments, 1)
        ]
        video_seconds = (await probe(video)).scene_duration
        track = workdir / "narration.wav"
        timing = await build_track(audio, lay_out(narration, render.blocks, video_seconds), track)
        self.ctx.artifacts.save_model(SceneFiles(index).timing, timing)
        self.timings[index] = timing
        return SceneClip(
            video=video, title=title, narration=text, audio=track, cues=cues(narration, timing, self.language)
        )

    async def _combined(self, clips: list[SceneClip]) -> CombinedVideo:
        """Combine the clips, or take the result from the shared cache if these clips were combined before."""
        final, use_gpu = self.ctx.scratch / "final", self.ctx.settings.use_gpu_acceleration
        cache = self.ctx.combined_cache
        if cache is None:
            return await combine_scenes(clips, final, use_gpu=use_gpu, tag=self.language)
        key = await asyncio.to_thread(combine_key, clips, use_gpu=use_gpu, tag=self.language)
        final.mkdir(parents=True, exist_ok=True)
        combined = await asyncio.to_thread(cache.fetch, key, final)
        if combined is None:
            combined = await combine_scenes(clips, final, use_gpu=use_gpu, tag=self.language)
            await asyncio.to_thread(cache.store, key, combined)
        return combined

    def _metadata(self, outline: VideoOutline, combined: CombinedVideo) -> dict[str, object]:
        info, revision = combined.info, self.ctx.job.request.revision
        return {
            "id": self.ctx.job.id,
            "topic": self.ctx.job.request.topic,
            "language": self.language,
            "title": outline.title,
            "created_at": self.ctx.job.created_at.isoformat(),
            "completed_at": utcnow().isoformat(),
            "duration_seconds": info.duration_seconds,
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "size_bytes": info.size_bytes,
            "video_codec": info.video_codec,
            "audio_codec": info.audio_codec,
            "encoder": combined.encoder,
            "quality": self.ctx.job.quality.value,
            "tags": self.ctx.job.request.tags,
            "delivery": self.ctx.job.request.delivery.model_dump(mode="json"),
            "scenes": [
                {"index": i, "title": c.title, "start_seconds": c.start_seconds, "end_seconds": c.end_seconds}
                for i, c in enumerate(combined.chapters, 1)
            ],
            "models": self.ctx.job.models.model_dump(),
            "revision_of": revision.parent if revision else None,
            "revised_scenes": revised_scenes(revision, len(outline.scenes)) if revision else None,
            "usage": self.ctx.ledger.total.model_dump(),
            "usage_by_stage": {stage.value: u.model_dump() for stage, u in self.ctx.ledger.by_stage.items()},
            "usage_by_model": {model: u.model_dump() for model, u in self.ctx.ledger.by_model.items()},
            "narration": narration_summary(self.ctx.job.voice, self.timings),
            "manim_version": version("manim"),
            "videojobs_version": version("videojobs"),
        }

    def _quality_report(self, scenes: int) -> dict[str, object]:
        """The metadata on fixes, layout and the render cache, per scene and for the job."""
        per_scene: list[dict[str, object]] = []
        fixes = violations = cache_hits = harness_faults = 0
        for index in range(1, scenes + 1):
            render = self.ctx.artifacts.load_model(SceneFiles(index).render, SceneRender)
            if render is None:
                raise StorageError(
                    f"the render record of scene {index} is missing from storage", recoverable=True
                )
            scene_fixes = len(self.ctx.artifacts.code_versions(index)) - 1
            fixes, violations = fixes + scene_fixes, violations + len(render.layout_violations)
            cache_hits += render.from_cache
            harness_faults += len(render.harness_faults)
            per_scene.append(
                {
                    "index": index,
                    "code_version": render.version,
                    "fix_attempts": scene_fixes,
                    "layout_fix_attempts": render.layout_fix_attempts,
                    "render_cache_hit": render.from_cache,
                    "layout_violations": [v.model_dump(mode="json") for v in render.layout_violations],
                    "harness_faults": render.harness_faults,
                }
            )
        return {
            "fix_attempts": fixes,
            "layout_violations_left": violations,
            "render_cache_hits": cache_hits,
            "harness_faults": harness_faults,
            "scene_renders": per_scene,
        }
