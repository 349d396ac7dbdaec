"""Typed pipeline errors: each names its stage, whether a retry can fix it, and what the user can do.

Suggestions say "retry the job": the REST route, `kubectl` (spec.attempt) and `videojobs resume` each do that.
"""

from __future__ import annotations

from typing import ClassVar

from videojobs.contract import JobError, Stage


class VideoGenerationError(Exception):
    """Base for every error that ends a job; carries what the user needs to act on it."""

    default_stage: ClassVar[Stage] = Stage.INITIALIZING
    default_suggestion: ClassVar[str] = "Retry the job; stored stages and scenes are kept."

    def __init__(
        self,
        message: str,
        *,
        recoverable: bool = False,
        suggestion: str | None = None,
        stage: Stage | None = None,
    ) -> None:
        self.stage = stage if stage is not None else self.default_stage
        super().__init__(f"{self.stage.value}: {message}")
        self.message = message
        self.recoverable = recoverable
        self.suggestion = suggestion if suggestion is not None else self.default_suggestion

    def to_contract(self) -> JobError:
        """The error as it appears in the job status."""
        return JobError(
            stage=self.stage, message=self.message, recoverable=self.recoverable, suggestion=self.suggestion
        )


class ConfigurationError(VideoGenerationError):
    """Settings or credentials are missing or wrong."""

    default_stage = Stage.INITIALIZING
    default_suggestion = "Fix the named setting or environment variable and run again."


class RevisionError(VideoGenerationError):
    """A revise names a job or scenes it cannot reuse."""

    default_stage = Stage.INITIALIZING
    default_suggestion = "Revise a job that got at least as far as its outline, naming scenes it has."


class BudgetExceededError(VideoGenerationError):
    """The next LLM call would go past the job's max_cost_usd."""

    default_suggestion = "Raise max_cost_usd and retry the job; finished work is kept."


class PlanningError(VideoGenerationError):
    """The planner did not produce a usable scene outline."""

    default_stage = Stage.PLANNING
    default_suggestion = (
        "Retry the job to ask again, or use a stronger planner model or a more specific topic."
    )


class ScenarioError(VideoGenerationError):
    """A scene's storyboard/technical/narration plan could not be produced."""

    default_stage = Stage.SCENARIO_CREATION
    default_suggestion = "Retry the job to redo the missing scene plans, or use a stronger scene model."


class CodeGenerationError(VideoGenerationError):
    """The scene model did not produce code that passes the static check."""

    default_stage = Stage.CODE_GENERATION
    default_suggestion = "Retry the job to redo the failed scenes, or use a stronger scene model."


class RenderingError(VideoGenerationError):
    """One or more scenes failed to render after every fix attempt."""

    default_stage = Stage.RENDERING
    default_suggestion = (
        "Retry the job to redo only the failed scenes (rendered ones are kept), or use a stronger "
        "helper model; the deployment may also raise MAX_FIX_ATTEMPTS."
    )


class CombiningError(VideoGenerationError):
    """The rendered scenes could not be joined into one video."""

    default_stage = Stage.COMBINING
    default_suggestion = "Retry the job; if it fails again, the deployment's ffmpeg needs checking."


class StorageError(VideoGenerationError):
    """Artifacts could not be written to or read from storage."""

    default_stage = Stage.STORAGE
    default_suggestion = "Retry the job later; if it fails again, the deployment's storage needs checking."
