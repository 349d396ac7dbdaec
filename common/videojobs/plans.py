"""Typed artifacts the models produce: the video outline and each scene's plan."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PlanModel(BaseModel):
    """Base for model-written JSON: ignore chatter fields, keep the ones we need."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class SceneOutline(PlanModel):
    """One scene of the outline: what it is called and what it must get across."""

    title: str = Field(min_length=1, max_length=120)
    purpose: str = Field(min_length=1, max_length=2000)
    key_points: list[str] = Field(default_factory=list, max_length=12)


class VideoOutline(PlanModel):
    """The planner's scene outline for the whole video."""

    title: str = Field(min_length=1, max_length=200)
    scenes: list[SceneOutline] = Field(min_length=1, max_length=12)


class ScenePlan(PlanModel):
    """How one scene looks, how it is built in Manim, and what the narrator says."""

    storyboard: str = Field(min_length=1, max_length=6000, description="Visual storyboard, step by step.")
    technical: str = Field(min_length=1, max_length=6000, description="Manim objects, animations, layout.")
    narration: str = Field(min_length=1, max_length=4000, description="What the voice-over says.")
    manim_objects: list[str] = Field(default_factory=list, max_length=40)
