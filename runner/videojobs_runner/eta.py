"""The estimated completion time: stage durations measured in this job, else in recent jobs of its quality."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import fmean

from pydantic import BaseModel, TypeAdapter, ValidationError

from videojobs.contract import STAGES, Quality, Stage
from videojobs.errors import StorageError
from videojobs.storage import Storage

log = logging.getLogger(__name__)

HISTORY_PREFIX = "_history/"
"""Next to the job folders, like `_cache/`: '_' can never start a job id."""
HISTORY_JOBS = 10
"""How many recent jobs of one quality the history keeps."""
SETUP = Stage.PLANNING
"""Key of the job's setup (initializing and planning, up to the outline) in the measured durations."""
ASSEMBLY = Stage.COMBINING
"""Key of the job's assembly (combining and storage, up to completion) in the measured durations."""
SCENE_STAGES = (Stage.SCENARIO_CREATION, Stage.CODE_GENERATION, Stage.RENDERING)
"""The stages every scene goes through, in order; their durations are per scene."""
PRIOR_SCENES = 4
"""The scene count assumed before the outline, when no recent job says otherwise."""
PRIOR_SECONDS_PER_PERCENT = {
    Quality.LOW: 1.0,
    Quality.MEDIUM: 2.0,
    Quality.HIGH: 5.0,
    Quality.PRODUCTION: 10.0,
}
"""The built-in prior: seconds per percent of a stage's progress weight, for a PRIOR_SCENES-scene job."""
OVERRUN_SHARE = 0.1
"""A stage running past its expected duration is still given this share of it to go."""


class JobTimings(BaseModel):
    """One finished job's mean measured durations (seconds), by SETUP, the SCENE_STAGES and ASSEMBLY."""

    scenes: int
    seconds: dict[Stage, float]


_HISTORY = TypeAdapter(list[JobTimings])


def history_key(quality: Quality) -> str:
    """The storage key of the recent jobs' timings at `quality`."""
    return f"{HISTORY_PREFIX}{quality.value}.json"


def load_history(storage: Storage, quality: Quality) -> list[JobTimings]:
    """The recent jobs' timings at `quality`, oldest first; none when absent or unreadable."""
    try:
        data = storage.get_bytes(history_key(quality))
        return _HISTORY.validate_json(data) if data is not None else []
    except (StorageError, ValidationError) as error:
        log.warning("ignoring the ETA history of %s quality: %s", quality.value, error)
        return []


def record_history(storage: Storage, quality: Quality, timings: JobTimings) -> None:
    """Append a finished job's timings to the history of its quality, keeping the last HISTORY_JOBS.

    Two jobs finishing at once may each drop the other's entry (read, then write): the history only
    seeds estimates, so a lost entry costs a little accuracy, never correctness.
    """
    if not timings.seconds:
        return
    kept = [*load_history(storage, quality), timings][-HISTORY_JOBS:]
    try:
        storage.put_bytes(history_key(quality), _HISTORY.dump_json(kept, indent=2))
    except StorageError as error:
        log.warning("could not record the ETA history of %s quality: %s", quality.value, error)


def prior_seconds(quality: Quality) -> dict[Stage, float]:
    """The built-in guess: each stage's progress weight in seconds (per scene for SCENE_STAGES)."""
    per_percent = PRIOR_SECONDS_PER_PERCENT[quality]
    seconds = {
        stage: (STAGES[stage].progress - STAGES[before].progress) * per_percent / PRIOR_SCENES
        for before, stage in zip((Stage.PLANNING, *SCENE_STAGES), SCENE_STAGES, strict=False)
    }
    seconds[SETUP] = STAGES[Stage.PLANNING].progress * per_percent
    seconds[ASSEMBLY] = (STAGES[Stage.COMPLETED].progress - STAGES[Stage.RENDERING].progress) * per_percent
    return seconds


@dataclass
class _Scene:
    """Where one scene stands, as the estimator follows it."""

    done: set[Stage] = field(default_factory=set)
    stage: Stage | None = None
    """The stage it works on (asked for or holding a slot); None between stages or when finished."""
    served_since: datetime | None = None
    """When it got a slot for `stage`; None while it waits for one."""


@dataclass(eq=False)  # hashed by identity
class _Slots:
    """A pool of concurrency slots, handed out first come, first served as the pipeline's semaphores do."""

    size: int
    busy: set[int] = field(default_factory=set)
    waiting: deque[int] = field(default_factory=deque)


class EtaEstimator:
    """Turns the pipeline's events into an estimated completion time.

    What is left: the setup until the outline, each scene's remaining stages (scheduled on the
    scene-work and render slots, as the pipeline runs them side by side), and the assembly. Each
    piece takes its expected duration: the mean measured in this job, blended with the mean of recent
    jobs of the same quality counted as one more measurement; before any measurement, that recent
    mean alone; without recent jobs, a built-in prior from the stages' progress weights. A stage's
    duration is measured from when it got its slot, so waiting for one is not counted twice.
    """

    def __init__(
        self,
        quality: Quality,
        *,
        scene_slots: int,
        render_slots: int,
        history: list[JobTimings],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.clock = clock
        self.started = clock()
        self.measured: dict[Stage, list[float]] = {key: [] for key in (SETUP, *SCENE_STAGES, ASSEMBLY)}
        self._recent = {
            key: fmean(values)
            for key in self.measured
            if (values := [job.seconds[key] for job in history if key in job.seconds])
        }
        self._prior = prior_seconds(quality)
        self._expected_scenes = round(fmean(job.scenes for job in history)) if history else PRIOR_SCENES
        self._planning = False
        self._scenes: dict[int, _Scene] = {}
        self._assembly_since: datetime | None = None
        self._scene_slots = _Slots(scene_slots)
        self._render_slots = _Slots(render_slots)

    def stage_entered(self, stage: Stage) -> None:
        """A job-wide stage begins."""
        now = self.clock()
        if stage is Stage.PLANNING:
            self._planning = True
        elif stage is Stage.COMBINING:
            self._assembly_since = now
        elif stage is Stage.COMPLETED and self._assembly_since is not None:
            self.measured[ASSEMBLY].append((now - self._assembly_since).total_seconds())

    def scenes_started(self, total: int) -> None:
        """The outline is known: `total` scenes begin."""
        if self._planning:  # a stored outline took no setup worth measuring
            self.measured[SETUP].append((self.clock() - self.started).total_seconds())
        self._scenes = {index: _Scene() for index in range(1, total + 1)}

    def scene_step(self, index: int, stage: Stage) -> None:
        """Scene `index` works on `stage` (its first step starts the stage; later ones are retries)."""
        scene = self._scenes[index]
        if scene.stage is stage:
            return
        scene.stage = stage
        slots = self._slots(stage)
        if len(slots.busy) < slots.size:
            slots.busy.add(index)
            scene.served_since = self.clock()
        else:
            slots.waiting.append(index)

    def scene_done(self, index: int, stage: Stage) -> None:
        """Scene `index` finished `stage` (and every stage before it)."""
        scene = self._scenes[index]
        if scene.stage is stage and scene.served_since is not None:
            self.measured[stage].append((self.clock() - scene.served_since).total_seconds())
        self._leave(index)
        scene.done.update(SCENE_STAGES[: SCENE_STAGES.index(stage) + 1])

    def scene_failed(self, index: int) -> None:
        """Scene `index` gave up: nothing more is left of it."""
        self._leave(index)
        self._scenes[index].done.update(SCENE_STAGES)

    def completion_time(self) -> datetime:
        """Now plus the estimated time left, in whole seconds."""
        now = self.clock()
        return (now + timedelta(seconds=self.seconds_left(now))).replace(microsecond=0)

    def seconds_left(self, now: datetime) -> float:
        """The estimated seconds from `now` until the job completes."""
        assembly = self.expected(ASSEMBLY)
        if self._assembly_since is not None:
            return self._rest(assembly, now - self._assembly_since)
        if self._scenes:
            return self._schedule(self._scenes, now) + assembly
        setup = self._rest(self.expected(SETUP), now - self.started)
        fresh = {index: _Scene() for index in range(1, self._expected_scenes + 1)}
        return setup + self._schedule(fresh, now) + assembly

    def expected(self, key: Stage) -> float:
        """Expected seconds of SETUP, a scene stage (per scene) or ASSEMBLY."""
        measured = self.measured[key]
        recent = self._recent.get(key)
        if not measured:
            return recent if recent is not None else self._prior[key]
        if recent is None:
            return fmean(measured)
        return (sum(measured) + recent) / (len(measured) + 1)

    def timings(self) -> JobTimings:
        """This job's mean measured durations, as the history records them."""
        seconds = {key: fmean(values) for key, values in self.measured.items() if values}
        return JobTimings(scenes=len(self._scenes), seconds=seconds)

    def _schedule(self, scenes: dict[int, _Scene], now: datetime) -> float:
        """Seconds until every scene is done, list-scheduling their remaining stages on the slots."""
        free_at = {pool: [0.0] * pool.size for pool in (self._scene_slots, self._render_slots)}
        ready_at = dict.fromkeys(scenes, 0.0)
        for index, scene in scenes.items():
            if scene.stage is not None and scene.served_since is not None:  # holding a slot now
                ready_at[index] = self._rest(self.expected(scene.stage), now - scene.served_since)
                free = free_at[self._slots(scene.stage)]
                free[free.index(min(free))] = ready_at[index]
        for stage in SCENE_STAGES:
            free = free_at[self._slots(stage)]
            for index in sorted(scenes, key=ready_at.__getitem__):
                scene = scenes[index]
                if stage in scene.done or (scene.stage is stage and scene.served_since is not None):
                    continue
                slot = free.index(min(free))
                ready_at[index] = max(ready_at[index], free[slot]) + self.expected(stage)
                free[slot] = ready_at[index]
        return max(ready_at.values(), default=0.0)

    def _slots(self, stage: Stage) -> _Slots:
        return self._render_slots if stage is Stage.RENDERING else self._scene_slots

    def _leave(self, index: int) -> None:
        """Scene `index` gives back its slot (or its place in the queue); the next in the queue gets it."""
        scene = self._scenes[index]
        if scene.stage is not None:
            slots = self._slots(scene.stage)
            if index in slots.busy:
                slots.busy.discard(index)
                if slots.waiting:
                    following = slots.waiting.popleft()
                    slots.busy.add(following)
                    self._scenes[following].served_since = self.clock()
            elif index in slots.waiting:
                slots.waiting.remove(index)
        scene.stage = None
        scene.served_since = None

    @staticmethod
    def _rest(expected: float, elapsed: timedelta) -> float:
        """What is left of a piece of work expected to take `expected` seconds, `elapsed` into it."""
        return max(expected - elapsed.total_seconds(), expected * OVERRUN_SHARE)
