"""Benchmark: what a revise of one scene and a retry after a failed scene cost, against a new job.

(a) A three-scene job at low quality, then in the same storage a revise of its scene 2 and a revise of
    the whole video: LLM calls, sentences spoken, scene renders and wall time of each (goal: the
    scene revise makes only scene 2's calls and render).
(b) A three-scene job whose scene 3 fails every fix, then resumed from its checkpoint while the fake
    LLM answers a fix that renders: LLM calls repeated for stored work (goal: zero) and renders
    repeated for stored scenes.
The fake LLM answers on 127.0.0.1; renders are real. Run: `.venv/bin/python bench/revise.py`.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "support"), str(ROOT / "bench")]

from fake_llm import FIXTURES, FakeLLM, serve  # noqa: E402
from job_runs import resume, run_new, run_revise  # noqa: E402
from pipeline import clean_replies  # noqa: E402

from videojobs.contract import GenerationRequest, JobStatus, Phase, Quality, Revision  # noqa: E402
from videojobs.settings import Settings  # noqa: E402
from videojobs_runner import sandbox, scenes  # noqa: E402
from videojobs_runner.tts import SPEECH_CACHE_PREFIX  # noqa: E402

_SCENE_OF_TASK = re.compile(r"-(\d+)(-of-\d+)?$")
REQUEST = GenerationRequest(topic="Benchmark topic")


@dataclass
class Cost:
    """What one run made: its LLM calls (task slugs), scenes rendered, sentences spoken, seconds."""

    label: str
    tasks: list[str]
    renders: list[int]
    spoken: int
    wall_s: float

    def row(self) -> str:
        """The run as a table row."""
        renders = ", ".join(map(str, sorted(self.renders))) or "-"
        return (
            f"| {self.label} | {len(self.tasks)} | {self.spoken} | {len(self.renders)} ({renders}) "
            f"| {self.wall_s:.1f} s |"
        )


class Meter:
    """Measures runs against one fake LLM and one storage folder; counts every real scene render."""

    def __init__(self, llm: FakeLLM, out: Path) -> None:
        self.llm, self.out = llm, out
        self.rendered: list[int] = []
        render = sandbox.render_scene

        async def counted(code_path: Path, *args: Any, **kwargs: Any) -> Any:
            self.rendered.append(int(code_path.stem.removeprefix("scene_")))
            return await render(code_path, *args, **kwargs)

        scenes.render_scene = counted  # type: ignore[attr-defined]

    def settings(self, **overrides: object) -> Settings:
        """Low quality, this meter's storage."""
        return Settings(output_dir=self.out, default_quality=Quality.LOW).model_copy(update=overrides)

    def measure(self, label: str, run: Callable[[], JobStatus], expect: Phase = Phase.SUCCEEDED) -> Cost:
        """Run a job and what it made; exits when it ends in another phase than `expect`."""
        calls, renders, spoken = len(self.llm.requests), len(self.rendered), self._spoken()
        start = time.perf_counter()
        status = run()
        wall = time.perf_counter() - start
        if status.phase is not expect:
            raise SystemExit(f"{label}: {status.phase.value}, expected {expect.value}: {status.error}")
        cost = Cost(label, self.llm.tasks()[calls:], self.rendered[renders:], self._spoken() - spoken, wall)
        print(f"{label}: {len(cost.tasks)} LLM calls {cost.tasks}, renders {cost.renders}", flush=True)
        return cost

    def _spoken(self) -> int:
        return len(list((self.out / SPEECH_CACHE_PREFIX).glob("*")))


def scene_of(task: str) -> int | None:
    """The scene a task is about (`revise-scene-code-2` → 2); None for the outline."""
    match = _SCENE_OF_TASK.search(task)
    return int(match.group(1)) if match else None


HEADER = "| run | LLM calls | sentences spoken | scene renders | wall |\n|---|---|---|---|---|"


def revise_costs(llm: FakeLLM, out: Path) -> None:
    """(a): a new job, a revise of its scene 2 and a revise of the whole video, in one storage."""
    meter = Meter(llm, out)
    settings = meter.settings()
    new = meter.measure("new job", lambda: run_new(settings, REQUEST, "parent"))
    one = Revision(parent="parent", instructions="Make the formula x cubed, in yellow.", scenes=[2])
    scene = meter.measure("revise of scene 2", lambda: run_revise(settings, one, "revise-2"))
    whole = Revision(parent="parent", instructions="Everything in yellow.")
    video = meter.measure("revise of the whole video", lambda: run_revise(settings, whole, "revise-all"))
    print(f"\n(a) revise against a new job (3 scenes, low quality):\n{HEADER}")
    for cost in (new, scene, video):
        print(cost.row())
    only_two = {scene_of(t) for t in scene.tasks} | set(scene.renders) == {2}
    print(f"goal: only scene 2's calls and render in its revise -> {'met' if only_two else 'NOT met'}")


def retry_costs(llm: FakeLLM, out: Path) -> None:
    """(b): a job failing in scene 3, resumed from its checkpoint once the fix renders."""
    meter = Meter(llm, out)
    settings = meter.settings(max_fix_attempts=1)
    failed = meter.measure(
        "new job, scene 3 fails", lambda: run_new(settings, REQUEST, "retry"), Phase.FAILED
    )
    fixed = FakeLLM.from_folder(FIXTURES / "three-scenes")
    llm.replies["fix-scene-code-3"] = fixed.replies["fix-scene-code-3"]
    retry = meter.measure("retry from the checkpoint", lambda: resume(settings, "retry"))
    repeated = [task for task in retry.tasks if task != "fix-scene-code-3"]  # all else was stored
    stored_renders = [scene for scene in retry.renders if scene != 3]
    print(f"\n(b) retry after a failure in scene 3 (MAX_FIX_ATTEMPTS=1):\n{HEADER}")
    for cost in (failed, retry):
        print(cost.row())
    print(f"LLM calls repeated for stored work: {len(repeated)} {repeated}")
    print(f"renders repeated for stored scenes: {len(stored_renders)}")
    print(f"goal: zero repeated calls -> {'met' if not repeated and not stored_renders else 'NOT met'}")


def main() -> None:
    clean, failing = clean_replies("revise"), FakeLLM.from_folder(FIXTURES / "scene-keeps-failing")
    server = serve(clean)
    os.environ.update(OPENAI_API_BASE=clean.url, OPENAI_API_KEY="test-key")
    for role in ("PLANNER_MODEL", "SCENE_MODEL", "HELPER_MODEL"):
        os.environ[role] = "openai/gpt-4o-mini"
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        revise_costs(clean, Path(out))
    clean.replies, clean.served = failing.replies, failing.served  # the same server, other answers
    with tempfile.TemporaryDirectory() as out:
        retry_costs(clean, Path(out))
    print(f"\nwhole bench {time.perf_counter() - start:.0f} s")
    server.shutdown()


if __name__ == "__main__":
    main()
