"""Progress reporting and the budget, through an in-process run (real renders, LLM over HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cli_runs import cli_env, job_folders, read_json, run_cli
from fake_llm import FIXTURES, FakeLLM

from videojobs.contract import STAGES, GenerationRequest, JobStatus, Phase, Quality, Stage
from videojobs.settings import Settings
from videojobs.storage import LocalStorage
from videojobs_runner.eta import SCENE_STAGES, load_history
from videojobs_runner.jobs import create_job, resolve, run_job

pytestmark = pytest.mark.render


class Recorder:
    def __init__(self) -> None:
        self.statuses: list[JobStatus] = []

    async def publish(self, status: JobStatus) -> None:
        self.statuses.append(status)


def test_progress_only_moves_forward_through_the_stages(fake_llm: FakeLLM, tmp_path: Path) -> None:
    settings = Settings(output_dir=tmp_path, default_quality=Quality.LOW)
    record = resolve(GenerationRequest(topic="Test topic"), settings)
    recorder = Recorder()
    status = asyncio.run(run_job(record, create_job(record, settings), settings, [recorder]))
    assert status.phase is Phase.SUCCEEDED

    progress = [s.progress for s in recorder.statuses]
    assert progress == sorted(progress) and progress[-1] == 100
    stages = [s.stage for s in recorder.statuses]
    order = list(Stage)
    assert [order.index(s) for s in stages] == sorted(order.index(s) for s in stages)
    assert set(stages) == set(Stage)  # every stage was reported
    # Inside the per-scene stages progress advances scene by scene, not in one jump.
    rendering = {s.progress for s in recorder.statuses if s.stage is Stage.RENDERING}
    assert len(rendering) >= 3 and max(rendering) <= STAGES[Stage.RENDERING].progress
    assert any("scene 2/3" in s.message for s in recorder.statuses)
    assert all(s.heartbeat_time is not None for s in recorder.statuses)


def test_every_status_while_running_carries_an_eta_and_the_job_feeds_the_history(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    settings = Settings(output_dir=tmp_path, default_quality=Quality.LOW)
    recorder = Recorder()
    for topic in ("First topic", "Second topic"):
        record = resolve(GenerationRequest(topic=topic), settings)
        status = asyncio.run(run_job(record, create_job(record, settings), settings, [recorder]))
        assert status.phase is Phase.SUCCEEDED
        *running, final = recorder.statuses
        for published in running:  # in the future of its publication, within the hour
            eta, now = published.estimated_completion_time, published.heartbeat_time
            assert eta is not None and now is not None
            assert 0 <= (eta - now).total_seconds() <= 3600, published.message
        assert final.estimated_completion_time is None  # ended: completionTime says when
        recorder.statuses.clear()
    first, second = load_history(LocalStorage(tmp_path), Quality.LOW)
    assert first.scenes == second.scenes == 3
    assert set(first.seconds) == {Stage.PLANNING, *SCENE_STAGES, Stage.COMBINING}
    assert all(seconds > 0 for seconds in first.seconds.values())


def test_budget_stops_before_the_call_that_would_exceed_it_and_resume_finishes(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    # Each call is priced beforehand at its prompt tokens plus the full output cap (1000 tokens of
    # gpt-4o-mini: $0.0006), so a $0.001 budget lets a few cheap calls through, then stops the job.
    env = cli_env(LLM_MAX_OUTPUT_TOKENS="1000")
    first = run_cli("generate", "Test topic", "--out", str(tmp_path), "--max-cost-usd", "0.001", env=env)
    assert first.returncode == 1
    (error_line,) = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert "could cost up to $0.000" in error_line and "max_cost_usd" in error_line
    assert "up to 1000 output tokens" in error_line
    (job,) = job_folders(tmp_path)
    status = read_json(job / "status.json")
    assert status["phase"] == "Failed" and status["error"]["recoverable"] is True
    spent = status["usage"]["costUsd"]
    assert 0 < spent <= 0.001  # the budget was never exceeded
    assert status["usage"]["llmCalls"] == len(fake_llm.requests) >= 1  # the refused call was never sent
    assert (job / "outline.json").exists()  # work done so far is kept
    assert "Usage" in first.stderr and "planning" in first.stderr  # the CLI's usage table, failure too
    calls_before = len(fake_llm.requests)

    second = run_cli("resume", str(job), "--max-cost", "5", env=env)
    assert second.returncode == 0, second.stderr
    final = read_json(job / "status.json")
    assert final["phase"] == "Succeeded"
    assert final["usage"]["llmCalls"] == len(fake_llm.requests)  # usage adds up across the two runs
    assert final["usage"]["costUsd"] > spent
    assert len(fake_llm.requests) > calls_before
    assert "outline" not in fake_llm.tasks()[calls_before:]
    # Per-stage sums also add up across runs, in the metadata and in the CLI's table.
    by_stage = read_json(job / "metadata.json")["usage_by_stage"]
    assert sum(u["llm_calls"] for u in by_stage.values()) == len(fake_llm.requests)
    assert sum(u["cost_usd"] for u in by_stage.values()) == pytest.approx(final["usage"]["costUsd"], abs=1e-5)
    assert by_stage["scenario_creation"]["tts_calls"] == 5  # espeak-ng spoke the five sentences once
    total_row = next(line for line in second.stderr.splitlines() if "total" in line)
    assert f"{final['usage']['costUsd']:.4f}" in total_row

    # The finished job revised from the command line: only scene 2 is asked for again.
    fake_llm.replies = FakeLLM.from_folder(FIXTURES / "revise").replies
    calls_before = len(fake_llm.requests)
    revise = ["revise", str(job), "--instructions", "Slower", "--scene", "2", "--job-id", "revised"]
    assert run_cli(*revise[:-2], "--scene", "0", env=env).returncode == 1
    third = run_cli(*revise, env=env)
    assert third.returncode == 0, third.stderr
    assert set(fake_llm.tasks()[calls_before:]) - {"speech"} == {
        "revise-scene-plan-2-of-3",
        "revise-scene-code-2",
    }
    assert read_json(tmp_path / "revised" / "metadata.json")["revision_of"] == job.name
