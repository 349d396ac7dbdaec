"""The pipeline orchestrator: runs the stage modules of a job in order, skipping what its checkpoint holds."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Sequence
from datetime import timedelta

from videojobs.artifacts import (
    METADATA_FILE,
    SUBTITLES_VTT_FILE,
    THUMBNAIL_FILE,
    USAGE_FILE,
    VIDEO_FILE,
    JobArtifacts,
    JobRecord,
)
from videojobs.cache_retention import evict
from videojobs.contract import JobResult, JobStatus, Phase, Stage, utcnow
from videojobs.errors import ConfigurationError, StorageError, VideoGenerationError
from videojobs.settings import RenderIsolation, Settings
from videojobs_runner.assembly import Assembly
from videojobs_runner.context import JobContext
from videojobs_runner.eta import EtaEstimator, load_history, record_history
from videojobs_runner.isolation import SandboxUnavailableError, check_available
from videojobs_runner.llm import LLMClient, UsageLedger
from videojobs_runner.planning import plan_outline
from videojobs_runner.progress import ProgressReporter, ProgressTracker
from videojobs_runner.render_cache import CombinedCache, RenderCache
from videojobs_runner.revision import scene_revisions, seed_revision
from videojobs_runner.scenes import SceneWork
from videojobs_runner.tts import Narrator

log = logging.getLogger(__name__)


class VideoPipeline:
    """Runs one job from topic to stored video; re-running it resumes from its stored artifacts."""

    def __init__(
        self,
        job: JobRecord,
        artifacts: JobArtifacts,
        settings: Settings,
        reporters: Sequence[ProgressReporter],
    ) -> None:
        previous = artifacts.load_status()
        status = JobStatus(phase=Phase.RUNNING, start_time=utcnow())
        if previous is not None:  # usage keeps adding up across resumes
            status.usage = previous.usage
            status.usage_by_model = previous.usage_by_model
        ledger = UsageLedger(
            max_cost_usd=job.request.max_cost_usd, total=status.usage, by_model=status.usage_by_model
        )
        ledger.restore(artifacts.load_text(USAGE_FILE))
        llm = LLMClient(
            ledger,
            timeout_seconds=settings.llm_timeout_seconds,
            retries=settings.llm_retries,
            max_output_tokens=settings.llm_max_output_tokens,
        )
        scratch = settings.scratch_dir / job.id
        shared = settings.shared_render_cache
        eta = EtaEstimator(
            job.quality,
            scene_slots=settings.max_scene_concurrency,
            render_slots=settings.max_concurrent_renders,
            history=load_history(artifacts.storage, job.quality),
        )
        self.ctx = JobContext(
            job=job,
            artifacts=artifacts,
            settings=settings,
            tracker=ProgressTracker(status, reporters, eta),
            ledger=ledger,
            llm=llm,
            scratch=scratch,
            narrator=Narrator(job.voice, job.request.language, artifacts.storage, llm, scratch),
            render_cache=RenderCache(artifacts.storage) if shared else None,
            combined_cache=CombinedCache(artifacts.storage) if shared else None,
        )

    @property
    def status(self) -> JobStatus:
        """The live status."""
        return self.ctx.tracker.status

    async def run(self) -> JobStatus:
        """Run (or resume) the job; returns the final status, Succeeded or Failed."""
        try:
            await self.ctx.tracker.enter(Stage.INITIALIZING)
            if not self.ctx.artifacts.exists(METADATA_FILE):
                await self._check_sandbox()
                await seed_revision(self.ctx)
                outline = await plan_outline(self.ctx)
                await SceneWork(self.ctx, scene_revisions(self.ctx, len(outline.scenes))).run(outline)
                await Assembly(self.ctx).run(outline)
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
        if self.ctx.settings.render_isolation is RenderIsolation.NONE:
            return  # every render logs its own warning
        if self.ctx.settings.render_isolation is RenderIsolation.POD:
            _ = self.ctx.sandbox  # built now: a ConfigurationError names what is missing
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

    async def _finish(self) -> None:
        self.ctx.artifacts.save_text(USAGE_FILE, self.ctx.ledger.dump())
        metadata = json.loads(self.ctx.artifacts.load_text(METADATA_FILE) or "{}")
        delivery = self.ctx.job.request.delivery
        self.status.result = JobResult(
            video=self.ctx.artifacts.location(VIDEO_FILE),
            thumbnail=self.ctx.artifacts.location(THUMBNAIL_FILE) if delivery.thumbnail else None,
            subtitles=self.ctx.artifacts.location(SUBTITLES_VTT_FILE) if delivery.subtitles else None,
            metadata=self.ctx.artifacts.location(METADATA_FILE),
            duration_seconds=metadata.get("duration_seconds"),
            size_bytes=metadata.get("size_bytes"),
        )
        self.status.scenes.total = len(metadata.get("scenes", [])) or self.status.scenes.total
        self.status.scenes.rendered = self.status.scenes.total
        self.status.phase = Phase.SUCCEEDED
        self.status.completion_time = utcnow()
        left = metadata.get("layout_violations_left") or 0
        note = f"Completed with {left} layout violation(s) left; see {METADATA_FILE}" if left else None
        await self.ctx.tracker.enter(Stage.COMPLETED, 1.0, note)
        timings = self.ctx.tracker.eta.timings()
        await asyncio.to_thread(record_history, self.ctx.artifacts.storage, self.ctx.job.quality, timings)
        await asyncio.to_thread(self._evict_cache)
        shutil.rmtree(self.ctx.scratch, ignore_errors=True)

    def _evict_cache(self) -> None:
        """Keep the shared cache within its size and age limits (best effort: the video is stored)."""
        settings = self.ctx.settings
        max_age = settings.cache_max_age_days
        try:
            evict(
                self.ctx.artifacts.storage,
                settings.cache_max_bytes,
                timedelta(days=max_age) if max_age is not None else None,
                utcnow(),
            )
        except StorageError as error:
            log.warning("cache eviction failed: %s", error)

    async def _fail(self, error: VideoGenerationError) -> None:
        self.ctx.artifacts.save_text(USAGE_FILE, self.ctx.ledger.dump())
        self.status.phase = Phase.FAILED
        self.status.error = error.to_contract()
        self.status.message = error.message
        self.status.completion_time = utcnow()
        await self.ctx.tracker.publish()
