"""Progress reporting: the tracker the pipeline calls, and the reporters that publish its status."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from videojobs.artifacts import STATUS_FILE, JobArtifacts
from videojobs.contract import STAGES, JobStatus, Stage, utcnow
from videojobs_runner.eta import EtaEstimator

# Share of the per-scene stages in overall progress, from the contract's stage marks.
_PER_SCENE_STAGES = (Stage.SCENARIO_CREATION, Stage.CODE_GENERATION, Stage.RENDERING)
_SCENE_WEIGHTS = {
    stage: STAGES[stage].progress - STAGES[previous].progress
    for previous, stage in zip((Stage.PLANNING, *_PER_SCENE_STAGES), _PER_SCENE_STAGES, strict=False)
}


class ProgressReporter(Protocol):
    """Receives the job status at every stage and scene change."""

    async def publish(self, status: JobStatus) -> None:
        """Make the status visible (file, console, Kubernetes status subresource, ...)."""


class StatusFileReporter:
    """Writes status.json beside the job's artifacts."""

    def __init__(self, artifacts: JobArtifacts) -> None:
        self.artifacts = artifacts

    async def publish(self, status: JobStatus) -> None:
        """Store the status as JSON."""
        await asyncio.to_thread(self.artifacts.save_model, STATUS_FILE, status)


def describe_time_left(seconds: float) -> str:
    """A rounded time left, as the progress bar shows it: `~40s left`, `~3m left`, `~1h05m left`."""
    if seconds < 60:
        return f"~{max(round(seconds), 1)}s left"
    minutes = round(seconds / 60)
    return f"~{minutes}m left" if minutes < 60 else f"~{minutes // 60}h{minutes % 60:02d}m left"


class TimeLeftColumn(ProgressColumn):
    """The time left until the task's `eta` field (a datetime, or None: nothing shown), counting down."""

    def render(self, task: Task) -> Text:
        """The column's text now."""
        eta: datetime | None = task.fields.get("eta")
        if eta is None:
            return Text("")
        return Text(describe_time_left((eta - datetime.now(UTC)).total_seconds()), style="progress.remaining")


class ConsoleReporter:
    """A rich progress bar on the terminal: stage message, bar, percent, scenes, elapsed time, time left."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description:<44}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[scenes]}"),
            TimeElapsedColumn(),
            TimeLeftColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> ConsoleReporter:
        self.progress.start()
        self.task = self.progress.add_task("Starting", total=100, scenes="", eta=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    async def publish(self, status: JobStatus) -> None:
        """Move the bar."""
        if self.task is None:
            return
        counts = status.scenes
        scenes = f"scenes {counts.rendered}/{counts.total}" if counts.total else ""
        if counts.failed:
            scenes += f" ({counts.failed} failed)"
        self.progress.update(
            self.task,
            completed=status.progress,
            description=status.message,
            scenes=scenes,
            eta=status.estimated_completion_time,
        )


@dataclass
class _SceneState:
    stage: Stage = Stage.SCENARIO_CREATION
    done_weight: int = 0


class ProgressTracker:
    """Owns the live JobStatus; turns pipeline events into stage, progress and messages."""

    def __init__(self, status: JobStatus, reporters: Sequence[ProgressReporter], eta: EtaEstimator) -> None:
        self.status = status
        self.reporters = list(reporters)
        self.eta = eta
        self._scenes: dict[int, _SceneState] = {}
        self._lock = asyncio.Lock()

    async def publish(self) -> None:
        """Send the current status to every reporter."""
        async with self._lock:
            self.status.heartbeat_time = utcnow()
            ended = self.status.phase.is_terminal  # then completionTime says when; no estimate is left
            self.status.estimated_completion_time = None if ended else self.eta.completion_time()
            delivery = asyncio.ensure_future(self._deliver(self.status.model_copy(deep=True)))
            try:
                await asyncio.shield(delivery)
            except asyncio.CancelledError:
                await delivery  # never leave an older status being written behind a newer one
                raise

    async def _deliver(self, snapshot: JobStatus) -> None:
        for reporter in self.reporters:
            await reporter.publish(snapshot)

    async def enter(self, stage: Stage, fraction: float = 0.0, message: str | None = None) -> None:
        """A job-wide stage begins (or advances)."""
        self.status.enter(stage, fraction, message)
        self.eta.stage_entered(stage)
        await self.publish()

    async def start_scenes(self, total: int) -> None:
        """The outline is known: per-scene work begins."""
        self._scenes = {index: _SceneState() for index in range(1, total + 1)}
        self.status.scenes.total = total
        self.eta.scenes_started(total)
        self.status.enter(Stage.SCENARIO_CREATION, 0.0)
        await self.publish()

    async def scene_step(self, index: int, stage: Stage, message: str) -> None:
        """Scene `index` starts working on `stage`."""
        self._scenes[index].stage = stage
        self.eta.scene_step(index, stage)
        self._refresh(message)
        await self.publish()

    async def scene_done_with(self, index: int, stage: Stage, message: str) -> None:
        """Scene `index` finished `stage`."""
        state = self._scenes[index]
        state.done_weight = sum(
            _SCENE_WEIGHTS[s] for s in _PER_SCENE_STAGES[: _PER_SCENE_STAGES.index(stage) + 1]
        )
        following = _PER_SCENE_STAGES.index(stage) + 1
        state.stage = _PER_SCENE_STAGES[following] if following < len(_PER_SCENE_STAGES) else Stage.COMBINING
        if stage is Stage.RENDERING:
            self.status.scenes.rendered += 1
        self.eta.scene_done(index, stage)
        self._refresh(message)
        await self.publish()

    async def scene_failed(self, index: int, message: str) -> None:
        """Scene `index` gave up after its fix attempts."""
        state = self._scenes[index]
        state.done_weight = sum(_SCENE_WEIGHTS.values())
        state.stage = Stage.COMBINING
        self.status.scenes.failed += 1
        self.eta.scene_failed(index)
        self._refresh(message)
        await self.publish()

    def _refresh(self, message: str) -> None:
        total = len(self._scenes)
        stage = min((s.stage for s in self._scenes.values()), key=list(Stage).index)
        done = sum(s.done_weight for s in self._scenes.values()) / total
        self.status.stage = min(stage, Stage.RENDERING, key=list(Stage).index)
        self.status.progress = int(STAGES[Stage.PLANNING].progress + done)
        self.status.message = message
