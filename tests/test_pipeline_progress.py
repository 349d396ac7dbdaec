"""Progress reporting and the budget, through an in-process run (real renders, LLM over HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cli_runs import cli_env, job_folders, read_json, run_cli
from fake_llm import FakeLLM

from videojobs.contract import STAGE_PROGRESS, GenerationRequest, JobStatus, Phase, Quality, Stage
from videojobs.settings import Settings
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
    assert len(rendering) >= 3 and max(rendering) <= STAGE_PROGRESS[Stage.RENDERING]
    assert any("scene 2/3" in s.message for s in recorder.statuses)
    assert all(s.heartbeat_time is not None for s in recorder.statuses)


def test_budget_stops_the_job_and_resume_with_more_budget_finishes(fake_llm: FakeLLM, tmp_path: Path) -> None:
    first = run_cli("generate", "Test topic", "--out", str(tmp_path), "--max-cost", "0.0001")
    assert first.returncode == 1
    assert "max_cost_usd" in first.stderr or "budget" in first.stderr
    (job,) = job_folders(tmp_path)
    status = read_json(job / "status.json")
    assert status["phase"] == "Failed" and status["error"]["recoverable"] is True
    spent = status["usage"]["costUsd"]
    assert spent >= 0.0001
    calls_before = len(fake_llm.requests)

    second = run_cli("resume", str(job), "--max-cost", "5", env=cli_env())
    assert second.returncode == 0, second.stderr
    final = read_json(job / "status.json")
    assert final["phase"] == "Succeeded"
    assert final["usage"]["llmCalls"] == len(fake_llm.requests)  # usage adds up across the two runs
    assert final["usage"]["costUsd"] > spent
    assert len(fake_llm.requests) > calls_before
