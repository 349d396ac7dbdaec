"""The ETA estimator, on an injected clock: priors, history, measurements, slots and the stored history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from videojobs.contract import Quality, Stage
from videojobs.storage import LocalStorage
from videojobs_runner.eta import (
    ASSEMBLY,
    HISTORY_JOBS,
    PRIOR_SCENES,
    SETUP,
    EtaEstimator,
    JobTimings,
    history_key,
    load_history,
    prior_seconds,
    record_history,
)
from videojobs_runner.progress import describe_time_left

START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PLAN, CODE, RENDER = Stage.SCENARIO_CREATION, Stage.CODE_GENERATION, Stage.RENDERING
RECENT = JobTimings(scenes=2, seconds={SETUP: 4.0, PLAN: 1.0, CODE: 2.0, RENDER: 10.0, ASSEMBLY: 6.0})


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def estimator(
    clock: Clock, history: list[JobTimings], *, scene_slots: int = 10, render_slots: int = 10
) -> EtaEstimator:
    return EtaEstimator(
        Quality.LOW, scene_slots=scene_slots, render_slots=render_slots, history=history, clock=clock
    )


def left(eta: EtaEstimator, clock: Clock) -> float:
    return eta.seconds_left(clock.now)


def test_prior_comes_from_the_stage_weights_before_anything_is_known() -> None:
    clock = Clock()
    eta = estimator(clock, [])
    prior = prior_seconds(Quality.LOW)
    # 5 % initializing + 10 % planning; 15, 20 and 30 % of scene work per PRIOR_SCENES scenes; 20 % after.
    per_scene = {PLAN: 15 / PRIOR_SCENES, CODE: 20 / PRIOR_SCENES, RENDER: 30 / PRIOR_SCENES}
    assert prior == {SETUP: 15.0, **per_scene, ASSEMBLY: 20.0}
    # Ten slots each: the scenes run side by side, so one scene's stages make the scene work.
    assert left(eta, clock) == pytest.approx(15 + (15 + 20 + 30) / PRIOR_SCENES + 20)
    assert eta.completion_time() == START + timedelta(seconds=51)  # whole seconds, as Kubernetes stores it
    assert prior_seconds(Quality.HIGH)[RENDER] == 5 * prior[RENDER]


def test_recent_jobs_of_the_same_quality_replace_the_prior() -> None:
    clock = Clock()
    eta = estimator(clock, [RECENT, RECENT.model_copy(update={"scenes": 4})])
    assert left(eta, clock) == pytest.approx(4 + (1 + 2 + 10) + 6)  # three scenes expected, side by side
    clock.advance(3)
    assert left(eta, clock) == pytest.approx(1 + 13 + 6)  # the setup counts down


def test_scenes_share_the_slots_in_the_schedule() -> None:
    clock = Clock()
    eta = estimator(clock, [RECENT], scene_slots=1, render_slots=2)
    eta.stage_entered(Stage.PLANNING)
    clock.advance(4)
    eta.scenes_started(4)
    # One scene-work slot: the plans (1 s each), then the codes (2 s each) of four scenes one after
    # another, so the codes end at 6, 8, 10 and 12 s; the two render slots take renders from 6 and 8 s,
    # the third and fourth wait for them: 18 + 10 s.
    assert left(eta, clock) == pytest.approx(28 + 6)
    eta_single_render = estimator(clock, [RECENT], scene_slots=10, render_slots=1)
    eta_single_render.scenes_started(4)
    assert left(eta_single_render, clock) == pytest.approx(3 + 4 * 10 + 6)


def test_measured_durations_blend_with_the_recent_mean_and_waiting_is_not_measured() -> None:
    clock = Clock()
    eta = estimator(clock, [RECENT], render_slots=1)
    eta.scenes_started(2)
    for index in (1, 2):
        eta.scene_done(index, CODE)  # stored plans and code: nothing to measure
        eta.scene_step(index, RENDER)
    assert eta.measured[PLAN] == eta.measured[CODE] == []
    clock.advance(30)
    eta.scene_done(1, RENDER)
    clock.advance(30)  # scene 2 waited 30 s for the one render slot, then rendered for 30 s
    eta.scene_done(2, RENDER)
    assert eta.measured[RENDER] == [30.0, 30.0]
    assert eta.expected(RENDER) == pytest.approx((30 + 30 + 10) / 3)  # the recent mean counts as one more
    assert eta.timings() == JobTimings(scenes=2, seconds={RENDER: 30.0})


def test_without_history_the_measurements_alone_count() -> None:
    clock = Clock()
    eta = estimator(clock, [])
    eta.scenes_started(1)
    eta.scene_step(1, PLAN)
    clock.advance(8)
    eta.scene_done(1, PLAN)
    assert eta.expected(PLAN) == 8.0 and eta.expected(CODE) == prior_seconds(Quality.LOW)[CODE]


def test_a_stage_in_progress_counts_down_and_an_overrun_keeps_a_share() -> None:
    clock = Clock()
    eta = estimator(clock, [RECENT])
    eta.scenes_started(1)
    eta.scene_done(1, CODE)
    eta.scene_step(1, RENDER)
    clock.advance(4)
    assert left(eta, clock) == pytest.approx(6 + 6)
    clock.advance(20)
    assert left(eta, clock) == pytest.approx(1 + 6)  # 10 % of the expected render


def test_failed_scenes_leave_nothing_and_free_their_slot() -> None:
    clock = Clock()
    eta = estimator(clock, [RECENT], render_slots=1)
    eta.scenes_started(2)
    for index in (1, 2):
        eta.scene_done(index, CODE)
        eta.scene_step(index, RENDER)
    clock.advance(5)
    eta.scene_failed(1)
    assert left(eta, clock) == pytest.approx(10 + 6)  # scene 2 got the slot just now
    assert eta.measured[RENDER] == []


def test_assembly_and_its_measurement() -> None:
    clock = Clock()
    eta = estimator(clock, [RECENT])
    eta.stage_entered(Stage.PLANNING)
    clock.advance(5)
    eta.scenes_started(1)
    eta.stage_entered(Stage.COMBINING)
    clock.advance(2)
    assert left(eta, clock) == pytest.approx(6 - 2)
    eta.stage_entered(Stage.STORAGE)
    clock.advance(2)
    eta.stage_entered(Stage.COMPLETED)
    assert eta.measured[SETUP] == [5.0] and eta.measured[ASSEMBLY] == [4.0]


def test_a_stored_outline_is_no_setup_measurement() -> None:
    clock = Clock()
    eta = estimator(clock, [])
    clock.advance(1)
    eta.scenes_started(3)
    assert eta.measured[SETUP] == []


def test_history_keeps_the_last_jobs_of_each_quality(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert load_history(storage, Quality.LOW) == []
    for scenes in range(1, HISTORY_JOBS + 3):
        record_history(storage, Quality.LOW, RECENT.model_copy(update={"scenes": scenes}))
    record_history(storage, Quality.LOW, JobTimings(scenes=1, seconds={}))  # nothing measured: not kept
    kept = load_history(storage, Quality.LOW)
    assert [job.scenes for job in kept] == list(range(3, HISTORY_JOBS + 3))
    assert load_history(storage, Quality.HIGH) == []
    storage.put_bytes(history_key(Quality.LOW), b"{not json")
    assert load_history(storage, Quality.LOW) == []  # unreadable: estimates fall back to the prior


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.2, "~1s left"), (42, "~42s left"), (150, "~2m left"), (3 * 3600 + 5 * 60, "~3h05m left")],
)
def test_time_left_as_the_progress_bar_shows_it(seconds: float, text: str) -> None:
    assert describe_time_left(seconds) == text
