"""Benchmark: the ETA of every published status against the real end, over a series of real jobs.

Runs `--jobs` three-scene jobs one after another at low quality in one storage folder (so each finds
the history of the ones before; the first has only the built-in prior), the fake LLM on 127.0.0.1
taking `--llm-seconds` per reply, the shared render cache off so every scene renders. The jobs take
turns among three scripts, so no job is quite like the history: tests/fixtures/llm/three-scenes (a
re-asked plan, a rejected code, a failed render and their fixes), layout-fix (two layout fixes: more
renders) and the first with every first answer right (no fixes). Prints the median and p90 absolute
error, in seconds and in % of the time that was left, overall, for the first job and the rest, and
per progress decile.
Run: `.venv/bin/python bench/eta.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from fake_llm import FIXTURES, FakeLLM, serve  # noqa: E402

from videojobs.contract import GenerationRequest, JobStatus, Phase, Quality  # noqa: E402
from videojobs.settings import Settings  # noqa: E402
from videojobs_runner.jobs import create_job, resolve, run_job  # noqa: E402


def scripts() -> list[tuple[str, dict[str, list[str]]]]:
    """The fake LLM's replies of each kind of job the series takes turns among."""
    fixes = FakeLLM.from_folder(FIXTURES / "three-scenes").replies
    clean = dict(fixes, **{"scene-plan-1-of-3": fixes["scene-plan-1-of-3"][1:]})
    for scene in (2, 3):
        clean[f"scene-code-{scene}"] = fixes[f"fix-scene-code-{scene}"]
    layout = FakeLLM.from_folder(FIXTURES / "layout-fix").replies
    return [("fixes", fixes), ("layout fixes", layout), ("no fixes", clean)]


@dataclass(frozen=True)
class Estimate:
    """One published status: when, how far along, and the completion time it promised."""

    job: int
    published: datetime
    progress: int
    eta: datetime


class Recorder:
    """A ProgressReporter keeping every estimate of the running job."""

    def __init__(self) -> None:
        self.job = 0
        self.estimates: list[Estimate] = []

    async def publish(self, status: JobStatus) -> None:
        """Note the estimate (none once the job has ended)."""
        if status.estimated_completion_time is not None:
            self.estimates.append(
                Estimate(self.job, datetime.now(UTC), status.progress, status.estimated_completion_time)
            )


@dataclass(frozen=True)
class Error:
    """How far one estimate was from the real end."""

    job: int
    progress: int
    seconds: float
    share_of_left: float


def percentile(values: list[float], share: float) -> float:
    """The `share` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summary(label: str, errors: list[Error]) -> str:
    """One row: count, median and p90 of the absolute error in seconds and in % of the time left."""
    if not errors:
        return f"{label:<18} {0:>4}"
    seconds = [e.seconds for e in errors]
    shares = [e.share_of_left * 100 for e in errors]
    return (
        f"{label:<18} {len(errors):>4} {statistics.median(seconds):>8.1f} {percentile(seconds, 0.9):>8.1f}"
        f" {statistics.median(shares):>8.0f} {percentile(shares, 0.9):>8.0f}"
    )


def run_series(state: FakeLLM, jobs: int, out: Path) -> tuple[list[Error], list[float]]:
    """Run the jobs, taking turns among the scripts; the error of each estimate, and each job's wall time."""
    kinds = scripts()
    settings = Settings(output_dir=out, default_quality=Quality.LOW, shared_render_cache=False)
    recorder = Recorder()
    errors: list[Error] = []
    walls: list[float] = []
    for job in range(1, jobs + 1):
        recorder.job = job
        kind, state.replies = kinds[(job - 1) % len(kinds)]
        state.served.clear()  # every job gets its script's replies from the first
        record = resolve(GenerationRequest(topic=f"Benchmark topic {job}"), settings)
        started = datetime.now(UTC)
        status = asyncio.run(run_job(record, create_job(record, settings), settings, [recorder]))
        ended = datetime.now(UTC)
        if status.phase is not Phase.SUCCEEDED:
            raise SystemExit(f"benchmark job {job} failed: {status.error}")
        walls.append((ended - started).total_seconds())
        for estimate in (e for e in recorder.estimates if e.job == job):
            left = max((ended - estimate.published).total_seconds(), 1.0)
            off = abs((estimate.eta - ended).total_seconds())
            errors.append(Error(job, estimate.progress, off, off / left))
        count = sum(e.job == job for e in errors)
        print(f"job {job} ({kind}): {walls[-1]:.1f} s, {count} estimates", flush=True)
    return errors, walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--llm-seconds", type=float, default=1.0, help="How long each LLM reply takes.")
    args = parser.parse_args()
    state = FakeLLM(replies={}, delay_seconds=args.llm_seconds)
    server = serve(state)
    os.environ.update(OPENAI_API_BASE=state.url, OPENAI_API_KEY="test-key")
    for role in ("PLANNER_MODEL", "SCENE_MODEL", "HELPER_MODEL"):
        os.environ[role] = "openai/gpt-4o-mini"
    with tempfile.TemporaryDirectory() as out:
        errors, walls = run_series(state, args.jobs, Path(out))
    server.shutdown()
    print(f"\n{args.jobs} jobs (3 scenes, low quality, LLM replies {args.llm_seconds:g} s)", end=", ")
    print(f"wall time {min(walls):.1f}-{max(walls):.1f} s")
    print(f"{'estimates':<18} {'n':>4} {'med s':>8} {'p90 s':>8} {'med %':>8} {'p90 %':>8}")
    print(summary("all", errors))
    print(summary("job 1 (prior)", [e for e in errors if e.job == 1]))
    print(summary("jobs 2+ (history)", [e for e in errors if e.job > 1]))
    print("jobs 2+ by progress when published:")
    for decile in range(10):
        in_decile = [e for e in errors if e.job > 1 and min(e.progress // 10, 9) == decile]
        print(summary(f"  {decile * 10}-{decile * 10 + 9} %", in_decile))


if __name__ == "__main__":
    main()
