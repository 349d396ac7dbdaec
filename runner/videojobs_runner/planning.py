"""The planning stage: topic to scene outline."""

from __future__ import annotations

from videojobs.artifacts import OUTLINE_FILE
from videojobs.contract import Stage
from videojobs.errors import PlanningError
from videojobs.plans import VideoOutline
from videojobs_runner import prompts
from videojobs_runner.context import JobContext
from videojobs_runner.llm import InvalidReply, json_reply

MIN_SCENES = 3


async def plan_outline(ctx: JobContext) -> VideoOutline:
    """The scene outline: stored, or asked of the planner model (re-asked while malformed)."""
    stored = ctx.artifacts.load_model(OUTLINE_FILE, VideoOutline)
    if stored is not None:
        return stored
    await ctx.tracker.enter(Stage.PLANNING)
    request = ctx.job.request
    low = min(MIN_SCENES, request.max_scenes)
    parse_json = json_reply(VideoOutline)

    def parse(text: str) -> VideoOutline:
        outline = parse_json(text)
        if not low <= len(outline.scenes) <= request.max_scenes:
            raise InvalidReply(
                f"the outline has {len(outline.scenes)} scenes; it needs {low} to {request.max_scenes}"
            )
        return outline

    outline = await ctx.llm.ask(
        ctx.job.models.planner,
        prompts.outline_messages(
            request.topic, request.description, low, request.max_scenes, request.language
        ),
        parse,
        stage=Stage.PLANNING,
        attempts=ctx.settings.max_plan_attempts,
        error_type=PlanningError,
    )
    ctx.artifacts.save_model(OUTLINE_FILE, outline)
    return outline
