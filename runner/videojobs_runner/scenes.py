"""The per-scene stages: plans, narration, code, and renders with their bounded fix and layout loops."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

from videojobs.artifacts import SceneFiles
from videojobs.contract import Stage
from videojobs.errors import CodeGenerationError, RenderingError, ScenarioError, VideoGenerationError
from videojobs.plans import SceneOutline, ScenePlan, VideoOutline
from videojobs_runner import grounding, prompts
from videojobs_runner.codecheck import check_scene_code
from videojobs_runner.combine import extract_frame
from videojobs_runner.context import JobContext
from videojobs_runner.layout import VIOLATIONS, LayoutViolation, describe_violations
from videojobs_runner.llm import Message, fenced_block, json_reply
from videojobs_runner.render_cache import CachedRender, render_key
from videojobs_runner.sandbox import RenderLimits, render_scene
from videojobs_runner.tts import SceneNarration

logger = logging.getLogger(__name__)

SCENE_THUMBNAIL_WIDTH = 320
"""Pixels across of a scene's poster frame (its height keeps the aspect ratio)."""


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
    revision: prompts.SceneRevision | None = None


class SceneWork:
    """Every scene of one job from plan to stored render, scenes side by side within the limits."""

    def __init__(self, ctx: JobContext, revisions: Mapping[int, prompts.SceneRevision] | None = None) -> None:
        self.ctx = ctx
        self.revisions = revisions or {}
        """In a revise, what is asked of each scene made again, by index."""
        self._scene_slots = asyncio.Semaphore(ctx.settings.max_scene_concurrency)
        self._render_slots = asyncio.Semaphore(ctx.settings.max_concurrent_renders)

    async def run(self, outline: VideoOutline) -> None:
        """Plan, code and render every scene (concurrently); raise when any failed after its fixes."""
        await self.ctx.tracker.start_scenes(len(outline.scenes))
        scenes = [
            _Scene(index, scene, revision=self.revisions.get(index))
            for index, scene in enumerate(outline.scenes, 1)
        ]
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
                f"{len(failed)} of {len(scenes)} scenes failed after every fix attempt: scene {names} "
                f"(its code and render log are kept with the job's artifacts under "
                f"{SceneFiles(failed[0].index).folder})",
                recoverable=True,
            )

    async def _scene(self, outline: VideoOutline, scene: _Scene) -> SceneOutcome:
        name = f"scene {scene.index}/{len(outline.scenes)}"
        done = self.ctx.artifacts.load_model(SceneFiles(scene.index).render, SceneRender)
        scene.plan = await self._scene_plan(outline, scene, name)
        scene.narration = await self._narration(scene)
        await self.ctx.tracker.scene_done_with(scene.index, Stage.SCENARIO_CREATION, f"Planned {name}")
        if done is None and not self.ctx.artifacts.code_versions(scene.index):
            await self.ctx.tracker.scene_step(scene.index, Stage.CODE_GENERATION, f"Writing code for {name}")
            reference = grounding.plan_reference(scene.plan)
            await self._ask_code(
                scene.index,
                1,
                self.ctx.job.models.scene,
                prompts.code_messages(self._brief(scene), reference),
                Stage.CODE_GENERATION,
            )
        await self.ctx.tracker.scene_done_with(scene.index, Stage.CODE_GENERATION, f"Code ready for {name}")
        if done is not None:
            await self.ctx.tracker.scene_done_with(scene.index, Stage.RENDERING, f"Rendered {name} (stored)")
            return SceneOutcome.RENDERED
        return await self._render_with_fixes(scene, name)

    def _brief(self, scene: _Scene) -> prompts.SceneBrief:
        """What the code prompts say of `scene` (planned by now)."""
        assert scene.plan is not None
        return prompts.SceneBrief(
            scene.index,
            scene.outline,
            scene.plan,
            self.ctx.job.quality,
            scene.narration,
            scene.revision,
            self.ctx.job.request.language,
        )

    async def _scene_plan(self, outline: VideoOutline, scene: _Scene, name: str) -> ScenePlan:
        plan_name = SceneFiles(scene.index).plan
        stored = self.ctx.artifacts.load_model(plan_name, ScenePlan)
        if stored is not None:
            return stored
        await self.ctx.tracker.scene_step(scene.index, Stage.SCENARIO_CREATION, f"Planning {name}")
        async with self._scene_slots:
            plan = await self.ctx.llm.ask(
                self.ctx.job.models.scene,
                prompts.scene_plan_messages(
                    outline, scene.index, scene.revision, self.ctx.job.request.language
                ),
                json_reply(ScenePlan),
                stage=Stage.SCENARIO_CREATION,
                attempts=self.ctx.settings.max_plan_attempts,
                error_type=ScenarioError,
            )
        self.ctx.artifacts.save_model(plan_name, plan)
        return plan

    async def _narration(self, scene: _Scene) -> SceneNarration | None:
        """The scene's narration spoken and measured (stored; None when the voice is `none`)."""
        assert scene.plan is not None
        name = SceneFiles(scene.index).narration
        stored = self.ctx.artifacts.load_model(name, SceneNarration)
        if stored is not None or not self.ctx.narrator.enabled:
            return stored
        narration = await self.ctx.narrator.narrate(scene.plan.narration, Stage.SCENARIO_CREATION)
        self.ctx.artifacts.save_model(name, narration)
        return narration

    async def _render_with_fixes(self, scene: _Scene, name: str) -> SceneOutcome:
        """Render the newest code version; on failure ask for a fix, at most MAX_FIX_ATTEMPTS times.

        The first version that renders goes on to the layout fixes, which store the scene's render.
        """
        assert scene.plan is not None
        version = self.ctx.artifacts.code_versions(scene.index)[-1]
        outcome = SceneOutcome.RENDER_FAILED
        for fixes in range(self.ctx.settings.max_fix_attempts + 1):
            code = self.ctx.artifacts.load_text(SceneFiles(scene.index).code(version)) or ""
            error = self.ctx.artifacts.load_text(SceneFiles(scene.index).error(version))
            if error is None:
                attempt = f" (fix {fixes})" if fixes else ""
                await self.ctx.tracker.scene_step(scene.index, Stage.RENDERING, f"Rendering {name}{attempt}")
                outcome, error, rendered = await self._render_version(scene, version, code)
                if rendered is not None:
                    await self._settle_layout(scene, name, rendered)
                    await self.ctx.tracker.scene_done_with(scene.index, Stage.RENDERING, f"Rendered {name}")
                    return outcome
            if fixes == self.ctx.settings.max_fix_attempts:
                break
            await self.ctx.tracker.scene_step(
                scene.index, Stage.RENDERING, f"Fixing {name} (fix {fixes + 1})"
            )
            version += 1
            await self._ask_code(
                scene.index,
                version,
                self.ctx.job.models.helper,
                prompts.fix_messages(self._brief(scene), code, error, grounding.error_reference(error)),
                Stage.RENDERING,
            )
        await self.ctx.tracker.scene_failed(scene.index, f"Gave up on {name}")
        return outcome

    async def _ask_code(
        self, index: int, version: int, model: str, messages: list[Message], stage: Stage
    ) -> str:
        """Ask a model for code version `version` of scene `index`; store it and return it."""
        async with self._scene_slots:
            reply = await self.ctx.llm.complete(model, messages, stage=stage)
        code = fenced_block(reply) + "\n"
        self.ctx.artifacts.save_text(SceneFiles(index).code(version), code)
        return code

    async def _settle_layout(self, scene: _Scene, name: str, rendered: _Rendered) -> None:
        """Ask for layout fixes while the best render has violations, then store the best render.

        At most MAX_LAYOUT_FIX_ATTEMPTS requests; the render with the fewest violations is kept
        (the newer on a tie), so a fix that fails to render or makes things worse changes nothing.
        """
        assert scene.plan is not None
        best, version, attempts = rendered, rendered.version, 0
        while best.record.layout_violations and attempts < self.ctx.settings.max_layout_fix_attempts:
            attempts += 1
            message = f"Fixing the layout of {name} (layout fix {attempts})"
            await self.ctx.tracker.scene_step(scene.index, Stage.RENDERING, message)
            version += 1
            code = await self._ask_code(
                scene.index,
                version,
                self.ctx.job.models.helper,
                prompts.layout_fix_messages(
                    self._brief(scene), best.code, describe_violations(best.record.layout_violations)
                ),
                Stage.RENDERING,
            )
            _, _, candidate = await self._render_version(scene, version, code)
            if candidate is not None and candidate.layout_cost <= best.layout_cost:
                best = candidate
        files = SceneFiles(scene.index)
        await asyncio.to_thread(self.ctx.artifacts.save_file, files.video, best.video)
        await self._store_thumbnail(scene.index, best)
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
        self.ctx.artifacts.save_model(files.render, record)

    async def _store_thumbnail(self, index: int, rendered: _Rendered) -> None:
        """Store a poster frame from the middle of the kept render (the first is often blank), or warn."""
        files = SceneFiles(index)
        poster = self.ctx.scratch / files.thumbnail
        try:
            await asyncio.to_thread(poster.parent.mkdir, parents=True, exist_ok=True)
            await extract_frame(
                rendered.video, rendered.record.duration_seconds / 2, poster, width=SCENE_THUMBNAIL_WIDTH
            )
            await asyncio.to_thread(self.ctx.artifacts.save_file, files.thumbnail, poster)
        except (VideoGenerationError, OSError) as error:
            logger.warning("scene %d has no thumbnail: %s", index, error)

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
            self.ctx.artifacts.save_text(SceneFiles(index).error(version), error)
            return SceneOutcome.CHECK_FAILED, error, None
        workdir = self.ctx.scratch / SceneFiles(index).folder / f"v{version}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        log_name = SceneFiles(index).log(version)
        narration = scene.narration
        audio_digest = hashlib.sha256(narration.model_dump_json().encode()).hexdigest() if narration else None
        key = render_key(
            code,
            self.ctx.job.quality,
            audio_digest=audio_digest,
            layout_margin=self.ctx.settings.layout_margin,
        )
        video = workdir / "cached.mp4"
        cache = self.ctx.render_cache
        record = await asyncio.to_thread(cache.fetch, key, video) if cache is not None else None
        from_cache = record is not None
        if record is not None:
            self.ctx.artifacts.save_text(log_name, f"Taken from the shared render cache (key {key}).\n")
        else:
            code_path = workdir / f"scene_{index:02d}.py"
            code_path.write_text(code)
            async with self._render_slots:
                outcome = await render_scene(
                    code_path,
                    check.scene_class,
                    self.ctx.job.quality,
                    workdir,
                    RenderLimits.from_settings(self.ctx.settings),
                    enable_caching=self.ctx.settings.enable_caching,
                    narration=narration.seconds if narration else (),
                    layout_margin=self.ctx.settings.layout_margin,
                    sandbox=self.ctx.sandbox,
                )
            self.ctx.artifacts.save_text(log_name, outcome.log)
            if not outcome.ok or outcome.video is None:
                self.ctx.artifacts.save_text(SceneFiles(index).error(version), outcome.error)
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
        self.ctx.artifacts.save_text(SceneFiles(index).layout(version), layout)
        return SceneOutcome.RENDERED, "", _Rendered(version, code, video, record, from_cache)
