"""Revise: a new job seeded with its parent's outline and kept scenes; only the named ones are made again."""

from __future__ import annotations

import asyncio

from videojobs.artifacts import OUTLINE_FILE, JobArtifacts, JobRecord, SceneFiles
from videojobs.contract import Revision, Stage
from videojobs.errors import RevisionError
from videojobs.plans import ScenePlan, VideoOutline
from videojobs_runner.context import JobContext
from videojobs_runner.prompts import SceneRevision
from videojobs_runner.scenes import SceneRender


def revised_scenes(revision: Revision, count: int) -> list[int]:
    """The 1-based scenes a revise makes again, of `count`: the named ones, or every scene."""
    return sorted(set(revision.scenes)) if revision.scenes else list(range(1, count + 1))


def scene_revisions(ctx: JobContext, count: int) -> dict[int, SceneRevision]:
    """What a revise asks of each scene it makes again, with the plan and code the parent had (seeded)."""
    revision = ctx.job.request.revision
    if revision is None:
        return {}
    return {
        index: SceneRevision(
            revision.instructions,
            ctx.artifacts.load_model(SceneFiles(index).parent_plan, ScenePlan),
            ctx.artifacts.load_text(SceneFiles(index).parent_code),
        )
        for index in revised_scenes(revision, count)
    }


async def seed_revision(ctx: JobContext) -> None:
    """Copy the parent's outline and kept scenes into a revise's storage; nothing for other jobs.

    The outline is copied last, so a revise that holds one was seeded whole and is not seeded again.
    """
    revision = ctx.job.request.revision
    if revision is None or ctx.artifacts.exists(OUTLINE_FILE):
        return
    parent = JobArtifacts(ctx.artifacts.storage, revision.parent)
    outline = _parent_outline(parent, ctx.job, revision)
    remade = revised_scenes(revision, len(outline.scenes))
    kept = len(outline.scenes) - len(remade)
    await ctx.tracker.enter(Stage.INITIALIZING, 0.5, f"Reusing {kept} scene(s) of job {revision.parent}")
    await asyncio.to_thread(_seed, parent, ctx.artifacts, len(outline.scenes), remade)
    ctx.artifacts.save_model(OUTLINE_FILE, outline)


def _parent_outline(parent: JobArtifacts, job: JobRecord, revision: Revision) -> VideoOutline:
    """The parent's outline, once the revise is known to fit it; RevisionError naming what does not."""
    record = parent.load_job()
    if record is None:
        raise RevisionError(
            f"job {revision.parent!r} does not exist", suggestion="Revise a job id listed among your jobs."
        )
    if (record.quality, record.voice) != (job.quality, job.voice):
        raise RevisionError(
            f"a revise of job {revision.parent!r} must keep its quality ({record.quality.value}) and voice",
            suggestion="Leave quality and voice out of the revise, or make a new job instead.",
        )
    outline = parent.load_model(OUTLINE_FILE, VideoOutline)
    if outline is None:
        raise RevisionError(
            f"job {revision.parent!r} has no outline yet, so it has nothing to reuse",
            suggestion="Resume that job (or wait for it) until it has planned its scenes, or make a new job.",
        )
    missing = [index for index in revision.scenes if index > len(outline.scenes)]
    if missing:
        raise RevisionError(
            f"job {revision.parent!r} has {len(outline.scenes)} scenes; there is no scene "
            + ", ".join(map(str, missing)),
            suggestion=f"Name scenes from 1 to {len(outline.scenes)}, or none to revise the whole video.",
        )
    return outline


def _seed(parent: JobArtifacts, child: JobArtifacts, count: int, remade: list[int]) -> None:
    """Kept scenes: plan, narration and (if rendered) render with its code; remade ones: old plan and code."""
    for index in range(1, count + 1):
        files = SceneFiles(index)
        render = parent.load_model(files.render, SceneRender)
        if index in remade:
            _copy(parent, child, files.plan, files.parent_plan)
            versions = parent.code_versions(index)
            final = render.version if render else versions[-1] if versions else None
            if final is not None:
                _copy(parent, child, files.code(final), files.parent_code)
            continue
        for name in (files.plan, files.narration):
            _copy(parent, child, name)
        if render is not None:  # the render record last: it marks the scene done
            kept = (files.code(render.version), files.layout(render.version), files.video, files.thumbnail)
            for name in (*kept, files.timing):
                _copy(parent, child, name)
            _copy(parent, child, files.render)


def _copy(parent: JobArtifacts, child: JobArtifacts, name: str, as_name: str | None = None) -> None:
    """One artifact from the parent into the child, under `as_name` if given; nothing when absent."""
    data = parent.storage.get_bytes(parent.key(name))
    if data is not None:
        child.storage.put_bytes(child.key(as_name or name), data)
