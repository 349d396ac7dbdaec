"""The pipeline orchestrator: runs every stage of a job, skipping whatever its checkpoint already holds."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path

from pydantic import BaseModel

from videojobs.artifacts import (
    METADATA_FILE,
    OUTLINE_FILE,
    SUBTITLES_SRT_FILE,
    SUBTITLES_VTT_FILE,
    THUMBNAIL_FILE,
    USAGE_FILE,
    VIDEO_FILE,
    JobArtifacts,
    JobRecord,
    SceneFiles,
)
from videojobs.contract import JobResult, JobStatus, Phase, Stage, utcnow
from videojobs.errors import (
    CodeGenerationError,
    ConfigurationError,
    PlanningError,
    RenderingError,
    ScenarioError,
    StorageError,
    VideoGenerationError,
)
from videojobs.settings import RenderIsolation, Settings
from videojobs_runner import grounding, prompts
from videojobs_runner.codecheck import check_scene_code
from videojobs_runner.combine import CombinedVideo, SceneClip, combine_scenes, probe
from videojobs_runner.isolation import SandboxUnavailableError, check_available
from videojobs_runner.layout import VIOLATIONS, LayoutViolation, describe_violations
from videojobs_runner.llm import InvalidReply, LLMClient, Message, UsageLedger, fenced_block, json_reply
from videojobs_runner.narration import SceneTiming, build_track, cues, lay_out, narration_summary
from videojobs_runner.plans import SceneOutline, ScenePlan, VideoOutline
from videojobs_runner.progress import ProgressReporter, ProgressTracker
from videojobs_runner.render_cache import CachedRender, CombinedCache, RenderCache, combine_key, render_key
from videojobs_runner.sandbox import RenderLimits, SandboxConfig, render_scene
from videojobs_runner.tts import Narrator, SceneNarration

MIN_SCENES = 3


class SceneOutcome(StrEnum):
    """How a scene's render-and-fix loop ended."""

    RENDERED = "rendered"
    RENDER_FAILED = "render_failed"
    CHECK_FAILED = "check_failed"


class SceneRender(BaseModel):
    """Record of a scene's successful render (its presence marks the scene done)."""

    version: int
    scene_class: str
    duration_seconds: float
    blocks: list[float] = []
    """Measured seconds of each narration block."""
    layout_violations: list[LayoutViolation] = []
    layout_fix_attempts: int = 0
    from_cache: bool = False
    harness_faults: list[str] = []
    """Errors in the render harness's own checks (ours, never the scene's): it rendered unchecked."""


@dataclass(frozen=True)
class _Rendered:
    """A code version that rendered: its video on local disk and what the render found."""

    version: int
    code: str
    video: Path
    record: CachedRender
    from_cache: bool

    @property
    def layout_cost(self) -> tuple[int, float]:
        """Fewer violations first, then less distance in total."""
        violations = self.record.layout_violations
        return len(violations), sum(v.distance for v in violations)


@dataclass
class _Scene:
    index: int
    outline: SceneOutline
    plan: ScenePlan | None = None
    narration: SceneNarration | None = None


class VideoPipeline:
    """Runs one job from topic to stored video; re-running it resumes from its stored artifacts."""

    def __init__(
        self,
        job: JobRecord,
        artifacts: JobArtifacts,
        settings: Settings,
        reporters: Sequence[ProgressReporter],
    ) -> None:
        self.job = job
        self.artifacts = artifacts
        self.settings = settings
        previous = artifacts.load_status()
        status = JobStatus(phase=Phase.RUNNING, start_time=utcnow())
        if previous is not None:  # usage keeps adding up across resumes
            status.usage = previous.usage
        self.tracker = ProgressTracker(status, reporters)
        self.ledger = UsageLedger(max_cost_usd=job.request.max_cost_usd, total=status.usage)
        self.ledger.restore(artifacts.load_text(USAGE_FILE))
        self.llm = LLMClient(
            self.ledger,
            timeout_seconds=settings.llm_timeout_seconds,
            retries=settings.llm_retries,
            max_output_tokens=settings.llm_max_output_tokens,
        )
        self.scratch = settings.scratch_dir / job.id
        self.narrator = Narrator(job.voice, artifacts.storage, self.llm, self.scratch)
        self._scene_slots = asyncio.Semaphore(settings.max_scene_concurrency)
        self._render_slots = asyncio.Semaphore(settings.max_concurrent_renders)
        self.timings: dict[int, SceneTiming] = {}
        self.render_cache = RenderCache(artifacts.storage) if settings.shared_render_cache else None
        self.combined_cache = CombinedCache(artifacts.storage) if settings.shared_render_cache else None

    @property
    def status(self) -> JobStatus:
        """The live status."""
        return self.tracker.status

    async def run(self) -> JobStatus:
        """Run (or resume) the job; returns the final status, Succeeded or Failed."""
        try:
            await self.tracker.enter(Stage.INITIALIZING)
            if not self.artifacts.exists(METADATA_FILE):
                await self._check_sandbox()
                outline = await self._outline()
                await self._scenes(outline)
                await self._combine_and_store(outline)
            await self._finish()
        except VideoGenerationError as error:
            await self._fail(error)
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM: say so, keep everything stored
            await self._fail(
                VideoGenerationError(
                    "interrupted before finishing",
                    stage=self.status.stage,
                    recoverable=True,
                    suggestion="Resume the job; stored stages and scenes are kept.",
                )
            )
            raise
        except Exception as error:  # a bug: still leave a truthful status behind, then crash loudly
            await self._fail(
                VideoGenerationError(
                    f"internal error: {type(error).__name__}: {error}",
                    stage=self.status.stage,
                    recoverable=True,
                    suggestion="Resume the job; if it fails the same way, report it with its artifacts.",
                )
            )
            raise
        return self.status

    async def _check_sandbox(self) -> None:
        """Fail before any LLM call when scenes could not render in the configured OS sandbox."""
        if self.settings.render_isolation is RenderIsolation.NONE:
            return  # every render logs its own warning
        if self.settings.render_isolation is RenderIsolation.POD:
            SandboxConfig.from_settings(self.settings)  # raises ConfigurationError naming what is missing
            return
        try:
            await asyncio.to_thread(check_available)
        except SandboxUnavailableError as error:
            raise ConfigurationError(
                f"the render sandbox cannot run here: {error}",
                recoverable=True,
                suggestion=(
                    "Install bubblewrap (README: 'The render sandbox') and resume. Only where scene code "
                    "may run unconfined, set RENDER_ISOLATION=none (unsafe)."
                ),
            ) from error

    # --- planning --------------------------------------------------------------------------

    async def _outline(self) -> VideoOutline:
        stored = self.artifacts.load_model(OUTLINE_FILE, VideoOutline)
        if stored is not None:
            return stored
        await self.tracker.enter(Stage.PLANNING)
        request = self.job.request
        low = min(MIN_SCENES, request.max_scenes)
        parse_json = json_reply(VideoOutline)

        def parse(text: str) -> VideoOutline:
            outline = parse_json(text)
            if not low <= len(outline.scenes) <= request.max_scenes:
                raise InvalidReply(
                    f"the outline has {len(outline.scenes)} scenes; it needs {low} to {request.max_scenes}"
                )
            return outline

        outline = await self.llm.ask(
            self.job.models.planner,
            prompts.outline_messages(request.topic, request.description, low, request.max_scenes),
            parse,
            stage=Stage.PLANNING,
            attempts=self.settings.max_plan_attempts,
            error_type=PlanningError,
        )
        self.artifacts.save_model(OUTLINE_FILE, outline)
        return outline

    # --- per-scene work --------------------------------------------------------------------

    async def _scenes(self, outline: VideoOutline) -> None:
        await self.tracker.start_scenes(len(outline.scenes))
        scenes = [_Scene(index, scene) for index, scene in enumerate(outline.scenes, 1)]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._scene(outline, scene)) for scene in scenes]
        except* VideoGenerationError as errors:  # the first error ends the job; its siblings were cancelled
            raise errors.exceptions[0] from None
        outcomes = {scene.index: task.result() for scene, task in zip(scenes, tasks, strict=True)}
        failed = [scene for scene in scenes if outcomes[scene.index] is not SceneOutcome.RENDERED]
        if failed:
            names = ", ".join(f"{s.index} ({s.outline.title})" for s in failed)
            never_ran = all(outcomes[s.index] is SceneOutcome.CHECK_FAILED for s in failed)
            error_type = CodeGenerationError if never_ran else RenderingError
            raise error_type(
                f"{len(failed)} of {len(scenes)} scenes failed after every fix attempt: scene {names}; "
                f"see {self.artifacts.location(SceneFiles(failed[0].index).folder)}",
                recoverable=True,
            )

    async def _scene(self, outline: VideoOutline, scene: _Scene) -> SceneOutcome:
        name = f"scene {scene.index}/{len(outline.scenes)}"
        done = self.artifacts.load_model(SceneFiles(scene.index).render, SceneRender)
        scene.plan = await self._scene_plan(outline, scene, name)
        scene.narration = await self._narration(scene)
        await self.tracker.scene_done_with(scene.index, Stage.SCENARIO_CREATION, f"Planned {name}")
        if done is None and not self.artifacts.code_versions(scene.index):
            await self.tracker.scene_step(scene.index, Stage.CODE_GENERATION, f"Writing code for {name}")
            reference = grounding.plan_reference(scene.plan)
            await self._ask_code(
                scene.index,
                1,
                self.job.models.scene,
                prompts.code_messages(self._brief(scene), reference),
                Stage.CODE_GENERATION,
            )
        await self.tracker.scene_done_with(scene.index, Stage.CODE_GENERATION, f"Code ready for {name}")
        if done is not None:
            await self.tracker.scene_done_with(scene.index, Stage.RENDERING, f"Rendered {name} (stored)")
            return SceneOutcome.RENDERED
        return await self._render_with_fixes(scene, name)

    def _brief(self, scene: _Scene) -> prompts.SceneBrief:
        """What the code prompts say of `scene` (planned by now)."""
        assert scene.plan is not None
        return prompts.SceneBrief(scene.index, scene.outline, scene.plan, self.job.quality, scene.narration)

    async def _scene_plan(self, outline: VideoOutline, scene: _Scene, name: str) -> ScenePlan:
        plan_name = SceneFiles(scene.index).plan
        stored = self.artifacts.load_model(plan_name, ScenePlan)
        if stored is not None:
            return stored
        await self.tracker.scene_step(scene.index, Stage.SCENARIO_CREATION, f"Planning {name}")
        async with self._scene_slots:
            plan = await self.llm.ask(
                self.job.models.scene,
                prompts.scene_plan_messages(outline, scene.index),
                json_reply(ScenePlan),
                stage=Stage.SCENARIO_CREATION,
                attempts=self.settings.max_plan_attempts,
                error_type=ScenarioError,
            )
        self.artifacts.save_model(plan_name, plan)
        return plan

    async def _narration(self, scene: _Scene) -> SceneNarration | None:
        """The scene's narration spoken and measured (stored; None when the voice is `none`)."""
        assert scene.plan is not None
        name = SceneFiles(scene.index).narration
        stored = self.artifacts.load_model(name, SceneNarration)
        if stored is not None or not self.narrator.enabled:
            return stored
        narration = await self.narrator.narrate(scene.plan.narration, Stage.SCENARIO_CREATION)
        self.artifacts.save_model(name, narration)
        return narration

    async def _render_with_fixes(self, scene: _Scene, name: str) -> SceneOutcome:
        """Render the newest code version; on failure ask for a fix, at most MAX_FIX_ATTEMPTS times.

        The first version that renders goes on to the layout fixes, which store the scene's render.
        """
        assert scene.plan is not None
        version = self.artifacts.code_versions(scene.index)[-1]
        outcome = SceneOutcome.RENDER_FAILED
        for fixes in range(self.settings.max_fix_attempts + 1):
            code = self.artifacts.load_text(SceneFiles(scene.index).code(version)) or ""
            error = self.artifacts.load_text(SceneFiles(scene.index).error(version))
            if error is None:
                attempt = f" (fix {fixes})" if fixes else ""
                await self.tracker.scene_step(scene.index, Stage.RENDERING, f"Rendering {name}{attempt}")
                outcome, error, rendered = await self._render_version(scene, version, code)
                if rendered is not None:
                    await self._settle_layout(scene, name, rendered)
                    await self.tracker.scene_done_with(scene.index, Stage.RENDERING, f"Rendered {name}")
                    return outcome
            if fixes == self.settings.max_fix_attempts:
                break
            await self.tracker.scene_step(scene.index, Stage.RENDERING, f"Fixing {name} (fix {fixes + 1})")
            version += 1
            await self._ask_code(
                scene.index,
                version,
                self.job.models.helper,
                prompts.fix_messages(self._brief(scene), code, error, grounding.error_reference(error)),
                Stage.RENDERING,
            )
        await self.tracker.scene_failed(scene.index, f"Gave up on {name}")
        return outcome

    async def _ask_code(
        self, index: int, version: int, model: str, messages: list[Message], stage: Stage
    ) -> str:
        """Ask a model for code version `version` of scene `index`; store it and return it."""
        async with self._scene_slots:
            reply = await self.llm.complete(model, messages, stage=stage)
        code = fenced_block(reply) + "\n"
        self.artifacts.save_text(SceneFiles(index).code(version), code)
        return code

    async def _settle_layout(self, scene: _Scene, name: str, rendered: _Rendered) -> None:
        """Ask for layout fixes while the best render has violations, then store the best render.

        At most MAX_LAYOUT_FIX_ATTEMPTS requests; the render with the fewest violations is kept
        (the newer on a tie), so a fix that fails to render or makes things worse changes nothing.
        """
        assert scene.plan is not None
        best, version, attempts = rendered, rendered.version, 0
        while best.record.layout_violations and attempts < self.settings.max_layout_fix_attempts:
            attempts += 1
            message = f"Fixing the layout of {name} (layout fix {attempts})"
            await self.tracker.scene_step(scene.index, Stage.RENDERING, message)
            version += 1
            code = await self._ask_code(
                scene.index,
                version,
                self.job.models.helper,
                prompts.layout_fix_messages(
                    self._brief(scene), best.code, describe_violations(best.record.layout_violations)
                ),
                Stage.RENDERING,
            )
            _, _, candidate = await self._render_version(scene, version, code)
            if candidate is not None and candidate.layout_cost <= best.layout_cost:
                best = candidate
        files = SceneFiles(scene.index)
        await asyncio.to_thread(self.artifacts.save_file, files.video, best.video)
        record = SceneRender(
            version=best.version,
            scene_class=best.record.scene_class,
            duration_seconds=best.record.duration_seconds,
            blocks=best.record.blocks,
            layout_violations=best.record.layout_violations,
            layout_fix_attempts=attempts,
            from_cache=best.from_cache,
            harness_faults=best.record.harness_faults,
        )
        self.artifacts.save_model(files.render, record)

    async def _render_version(
        self, scene: _Scene, version: int, code: str
    ) -> tuple[SceneOutcome, str, _Rendered | None]:
        """Check and render one code version (or take it from the shared render cache).

        Returns the outcome, the error to show the model, and the render when there is one.
        """
        index = scene.index
        check = check_scene_code(code)
        if not check.ok or check.scene_class is None:
            error = "The code was rejected by the safety check before running:\n" + "\n".join(check.issues)
            self.artifacts.save_text(SceneFiles(index).error(version), error)
            return SceneOutcome.CHECK_FAILED, error, None
        workdir = self.scratch / SceneFiles(index).folder / f"v{version}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        log_name = SceneFiles(index).log(version)
        narration = scene.narration
        audio_digest = hashlib.sha256(narration.model_dump_json().encode()).hexdigest() if narration else None
        key = render_key(
            code, self.job.quality, audio_digest=audio_digest, layout_margin=self.settings.layout_margin
        )
        video = workdir / "cached.mp4"
        cache = self.render_cache
        record = await asyncio.to_thread(cache.fetch, key, video) if cache is not None else None
        from_cache = record is not None
        if record is not None:
            self.artifacts.save_text(log_name, f"Taken from the shared render cache (key {key}).\n")
        else:
            code_path = workdir / f"scene_{index:02d}.py"
            code_path.write_text(code)
            async with self._render_slots:
                outcome = await render_scene(
                    code_path,
                    check.scene_class,
                    self.job.quality,
                    workdir,
                    RenderLimits.from_settings(self.settings),
                    enable_caching=self.settings.enable_caching,
                    narration=narration.seconds if narration else (),
                    layout_margin=self.settings.layout_margin,
                    sandbox=SandboxConfig.from_settings(self.settings),
                )
            self.artifacts.save_text(log_name, outcome.log)
            if not outcome.ok or outcome.video is None:
                self.artifacts.save_text(SceneFiles(index).error(version), outcome.error)
                return SceneOutcome.RENDER_FAILED, outcome.error, None
            video = outcome.video
            record = CachedRender(
                scene_class=check.scene_class,
                duration_seconds=outcome.duration_seconds or 0.0,
                blocks=list(outcome.blocks),
                layout_violations=list(outcome.layout),
                harness_faults=list(outcome.harness_faults),
            )
            if cache is not None:
                await asyncio.to_thread(cache.store, key, video, record)
        layout = VIOLATIONS.dump_json(record.layout_violations, indent=2).decode()
        self.artifacts.save_text(SceneFiles(index).layout(version), layout)
        return SceneOutcome.RENDERED, "", _Rendered(version, code, video, record, from_cache)

    # --- combining and storage -------------------------------------------------------------

    async def _combine_and_store(self, outline: VideoOutline) -> None:
        await self.tracker.enter(Stage.COMBINING)
        clips = await asyncio.gather(  # each scene's own ffprobe/ffmpeg runs, side by side
            *(self._clip(index, scene) for index, scene in enumerate(outline.scenes, 1))
        )
        combined = await self._combined(list(clips))
        await self.tracker.enter(Stage.STORAGE)
        for name, path in (
            (VIDEO_FILE, combined.video),
            (THUMBNAIL_FILE, combined.thumbnail),
            (SUBTITLES_SRT_FILE, combined.subtitles_srt),
            (SUBTITLES_VTT_FILE, combined.subtitles_vtt),
        ):
            await asyncio.to_thread(self.artifacts.save_file, name, path)
        metadata = self._metadata(outline, combined) | self._quality_report(len(outline.scenes))
        self.artifacts.storage.put_bytes(
            self.artifacts.key(METADATA_FILE), json.dumps(metadata, indent=2).encode(), "application/json"
        )

    async def _clip(self, index: int, scene: SceneOutline) -> SceneClip:
        """Scene `index`'s render fetched from storage, with its narration track."""
        local = self.scratch / "combine" / f"scene_{index:02d}.mp4"
        local.parent.mkdir(parents=True, exist_ok=True)
        if not await asyncio.to_thread(self.artifacts.fetch_file, SceneFiles(index).video, local):
            raise StorageError(f"the render of scene {index} is missing from storage", recoverable=True)
        plan = self.artifacts.load_model(SceneFiles(index).plan, ScenePlan)
        return await self._voiced(index, local, scene.title, plan.narration if plan else "")

    async def _voiced(self, index: int, video: Path, title: str, text: str) -> SceneClip:
        """A scene clip with its narration track laid under its blocks, and its timing stored."""
        narration = self.artifacts.load_model(SceneFiles(index).narration, SceneNarration)
        render = self.artifacts.load_model(SceneFiles(index).render, SceneRender)
        if narration is None or not narration.segments or render is None:
            return SceneClip(video=video, title=title, narration=text)
        workdir = video.parent / f"narration_{index:02d}"
        workdir.mkdir(parents=True, exist_ok=True)
        audio = [
            await self.narrator.fetch(segment, workdir / f"segment_{n:02d}.wav")
            for n, segment in enumerate(narration.segments, 1)
        ]
        video_seconds = (await probe(video)).scene_duration
        track = workdir / "narration.wav"
        timing = await build_track(audio, lay_out(narration, render.blocks, video_seconds), track)
        self.artifacts.save_model(SceneFiles(index).timing, timing)
        self.timings[index] = timing
        return SceneClip(video=video, title=title, narration=text, audio=track, cues=cues(narration, timing))

    async def _combined(self, clips: list[SceneClip]) -> CombinedVideo:
        """Combine the clips, or take the result from the shared cache if these clips were combined before."""
        final, use_gpu = self.scratch / "final", self.settings.use_gpu_acceleration
        cache = self.combined_cache
        if cache is None:
            return await combine_scenes(clips, final, use_gpu=use_gpu)
        key = await asyncio.to_thread(combine_key, clips, use_gpu=use_gpu)
        final.mkdir(parents=True, exist_ok=True)
        combined = await asyncio.to_thread(cache.fetch, key, final)
        if combined is None:
            combined = await combine_scenes(clips, final, use_gpu=use_gpu)
            await asyncio.to_thread(cache.store, key, combined)
        return combined

    def _metadata(self, outline: VideoOutline, combined: CombinedVideo) -> dict[str, object]:
        info = combined.info
        return {
            "id": self.job.id,
            "topic": self.job.request.topic,
            "title": outline.title,
            "created_at": self.job.created_at.isoformat(),
            "completed_at": utcnow().isoformat(),
            "duration_seconds": info.duration_seconds,
            "width": info.width,
            "height": info.height,
            "fps": info.fps,
            "size_bytes": info.size_bytes,
            "video_codec": info.video_codec,
            "audio_codec": info.audio_codec,
            "encoder": combined.encoder,
            "quality": self.job.quality.value,
            "scenes": [
                {"index": i, "title": c.title, "start_seconds": c.start_seconds, "end_seconds": c.end_seconds}
                for i, c in enumerate(combined.chapters, 1)
            ],
            "models": self.job.models.model_dump(),
            "usage": self.ledger.total.model_dump(),
            "usage_by_stage": {stage.value: u.model_dump() for stage, u in self.ledger.by_stage.items()},
            "narration": narration_summary(self.job.voice, self.timings),
            "manim_version": version("manim"),
            "videojobs_version": version("videojobs"),
        }

    def _quality_report(self, scenes: int) -> dict[str, object]:
        """The metadata on fixes, layout and the render cache, per scene and for the job."""
        per_scene: list[dict[str, object]] = []
        fixes = violations = cache_hits = harness_faults = 0
        for index in range(1, scenes + 1):
            render = self.artifacts.load_model(SceneFiles(index).render, SceneRender)
            if render is None:
                raise StorageError(
                    f"the render record of scene {index} is missing from storage", recoverable=True
                )
            scene_fixes = len(self.artifacts.code_versions(index)) - 1
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

    async def _finish(self) -> None:
        self.artifacts.save_text(USAGE_FILE, self.ledger.dump())
        metadata = json.loads(self.artifacts.load_text(METADATA_FILE) or "{}")
        self.status.result = JobResult(
            video=self.artifacts.location(VIDEO_FILE),
            thumbnail=self.artifacts.location(THUMBNAIL_FILE),
            subtitles=self.artifacts.location(SUBTITLES_VTT_FILE),
            metadata=self.artifacts.location(METADATA_FILE),
            duration_seconds=metadata.get("duration_seconds"),
            size_bytes=metadata.get("size_bytes"),
        )
        self.status.scenes.total = len(metadata.get("scenes", [])) or self.status.scenes.total
        self.status.scenes.rendered = self.status.scenes.total
        self.status.phase = Phase.SUCCEEDED
        self.status.completion_time = utcnow()
        left = metadata.get("layout_violations_left") or 0
        note = f"Completed with {left} layout violation(s) left; see {METADATA_FILE}" if left else None
        await self.tracker.enter(Stage.COMPLETED, 1.0, note)
        shutil.rmtree(self.scratch, ignore_errors=True)

    async def _fail(self, error: VideoGenerationError) -> None:
        self.artifacts.save_text(USAGE_FILE, self.ledger.dump())
        self.status.phase = Phase.FAILED
        self.status.error = error.to_contract()
        self.status.message = error.message
        self.status.completion_time = utcnow()
        await self.tracker.publish()
