"""Benchmark: a 3-scene job at low quality with the fake LLM answering instantly.

Prints total wall time, time inside scene renders (Manim subprocesses), time inside muxing, and the
overhead that remains (bookkeeping, storage, status writes); then runs an identical job twice in one
storage, where the second takes its scenes from the shared render cache.
Run: `.venv/bin/python bench/pipeline.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from fake_llm import FIXTURES, FakeLLM, serve  # noqa: E402

T = TypeVar("T")
Interval = tuple[float, float]


def clean_replies(folder: str = "three-scenes") -> FakeLLM:
    """A fixture over three-scenes with every first answer already correct (no re-asks, no fixes)."""
    state = FakeLLM.from_folder(FIXTURES / folder)
    state.replies["scene-plan-1-of-3"] = state.replies["scene-plan-1-of-3"][1:]
    for scene in (2, 3):
        state.replies[f"scene-code-{scene}"] = state.replies[f"fix-scene-code-{scene}"]
    return state


def timed(
    calls: list[tuple[float, float]], function: Callable[..., Awaitable[T]]
) -> Callable[..., Awaitable[T]]:
    """Wrap an async function, recording (start, end) of each call."""

    async def wrapper(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            calls.append((start, time.perf_counter()))

    return wrapper


def busy_time(intervals: list[Interval]) -> float:
    """Length of the union of intervals (concurrent renders count once)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def run_once(out: Path, job_id: str | None = None) -> dict[str, float]:
    """One job through the real pipeline (in storage folder `out`); returns the figures."""
    from videojobs.contract import GenerationRequest, Phase, Quality
    from videojobs.settings import Settings
    from videojobs_runner import assembly, scenes
    from videojobs_runner.jobs import create_job, resolve, run_job

    renders: list[Interval] = []
    muxes: list[Interval] = []
    scenes.render_scene = timed(renders, scenes.render_scene)  # type: ignore[assignment]
    assembly.combine_scenes = timed(muxes, assembly.combine_scenes)  # type: ignore[assignment]
    settings = Settings(output_dir=out, default_quality=Quality.LOW)
    record = resolve(GenerationRequest(topic="Benchmark topic"), settings, job_id)
    start = time.perf_counter()
    artifacts = create_job(record, settings)
    status = asyncio.run(run_job(record, artifacts, settings))
    wall = time.perf_counter() - start
    if status.phase is not Phase.SUCCEEDED:
        raise SystemExit(f"benchmark job failed: {status.error}")
    render, mux = busy_time(renders), busy_time(muxes)
    return {
        "wall_s": wall,
        "render_busy_s": render,
        "render_sum_s": sum(b - a for a, b in renders),
        "mux_s": mux,
        "overhead_s": wall - render - mux,
        "video_s": float(status.result.duration_seconds or 0) if status.result else 0.0,
    }


def identical_twice(state: FakeLLM) -> None:
    """The same job twice in one storage folder: the second takes every scene from the render cache."""
    with tempfile.TemporaryDirectory() as out:
        rows = []
        for job_id in ("first", "second"):
            state.served.clear()
            rows.append(run_once(Path(out), job_id))
            print(f"{job_id}: " + "  ".join(f"{k}={v:.2f}" for k, v in rows[-1].items()), flush=True)
    first, second = rows
    ratio = second["wall_s"] / first["wall_s"]
    print("\nidentical job twice (3 scenes, low quality, shared render cache in local storage):")
    print(f"  first  {first['wall_s']:6.2f} s (renders {first['render_busy_s']:.2f} s)")
    print(f"  second {second['wall_s']:6.2f} s (renders {second['render_busy_s']:.2f} s)")
    print(f"  of the second: mux {second['mux_s']:.2f} s, the rest {second['overhead_s']:.2f} s")
    print(f"  second / first = {ratio:.1%}; goal < 10 % -> {'met' if ratio < 0.1 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only-identical", action="store_true", help="Run only the identical-job pair.")
    args = parser.parse_args()
    state = clean_replies()
    server = serve(state)
    os.environ.update(OPENAI_API_BASE=state.url, OPENAI_API_KEY="test-key")
    for role in ("PLANNER_MODEL", "SCENE_MODEL", "HELPER_MODEL"):
        os.environ[role] = "openai/gpt-4o-mini"
    if args.only_identical:
        identical_twice(state)
        server.shutdown()
        return
    rows = []
    for run in range(args.runs):
        state.served.clear()
        with tempfile.TemporaryDirectory() as out:
            row = run_once(Path(out))
        rows.append(row)
        print(f"run {run + 1}: " + "  ".join(f"{k}={v:.2f}" for k, v in row.items()), flush=True)
    best = min(rows, key=lambda r: r["wall_s"])
    print("\nbest of", args.runs, "runs (3 scenes, low quality, fake LLM on 127.0.0.1):")
    for key, value in best.items():
        print(f"  {key:<14} {value:6.2f}")
    print(f"  goal: overhead < 2 s -> {'met' if best['overhead_s'] < 2 else 'NOT met'}")
    identical_twice(state)
    server.shutdown()


if __name__ == "__main__":
    main()
