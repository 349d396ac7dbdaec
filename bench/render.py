"""Benchmark: the render harness against plain Manim on the gallery corpus, and the escape corpus.

For every scene of tests/corpus/gallery it renders with plain `manim -ql` and through the pipeline's
render harness (`render_scene`, in the bubblewrap sandbox), in the same run, one after the other, and
prints whether each rendered and the wall-time ratio harness / plain. It then measures what the
sandbox itself adds per render (the same worker start-up with and without bubblewrap), and runs the
escape corpus through tests/test_escapes.py, counting the escapes that got out.
Run: `.venv/bin/python bench/render.py [--scenes N] [--repeat K] [--skip-escapes]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_gallery_fidelity import SCENES, render_plain, scene_class_of  # noqa: E402

from videojobs.contract import Quality  # noqa: E402
from videojobs.settings import RenderIsolation  # noqa: E402
from videojobs_runner.isolation import INSIDE_CODE_DIR, bwrap_launch  # noqa: E402
from videojobs_runner.sandbox import RenderLimits, SandboxConfig, render_scene  # noqa: E402

LIMITS = RenderLimits(timeout_seconds=300, memory_mb=4096, cpu_seconds=300)
STARTUP = "import manim"


@dataclass(frozen=True)
class SceneTiming:
    """One gallery scene rendered both ways."""

    name: str
    plain_ok: bool
    harness_ok: bool
    plain_seconds: float
    harness_seconds: float


async def time_scene(path: Path, root: Path) -> SceneTiming:
    """Render `path` with plain Manim, then through the harness, timing each."""
    scene_class = scene_class_of(await asyncio.to_thread(path.read_text))
    plain_dir = root / f"{path.stem}-plain" / "media"
    await asyncio.to_thread(plain_dir.mkdir, parents=True)
    started = time.perf_counter()
    plain = await render_plain(path, scene_class, plain_dir)
    plain_seconds = time.perf_counter() - started
    started = time.perf_counter()
    outcome = await render_scene(path, scene_class, Quality.LOW, root / f"{path.stem}-harness", LIMITS)
    harness_seconds = time.perf_counter() - started
    return SceneTiming(path.stem, plain.returncode == 0, outcome.ok, plain_seconds, harness_seconds)


def sandbox_startup(repeat: int) -> tuple[float, float]:
    """Median seconds of a worker's start-up (`import manim`) without and with bubblewrap around it."""
    with tempfile.TemporaryDirectory() as name:
        workdir = Path(name)
        (workdir / "tmp").mkdir()
        code = workdir / "startup.py"
        code.write_text(STARTUP + "\n")
        bare = [sys.executable, "-I", str(code)]
        inside = [sys.executable, "-I", str(INSIDE_CODE_DIR / code.name)]
        uids = SandboxConfig().uids
        timings: dict[str, list[float]] = {"bare": [], "bwrap": []}
        for _ in range(repeat):
            for kind in timings:
                argv = bare if kind == "bare" else bwrap_launch(inside, code, workdir, uids).argv
                started = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                timings[kind].append(time.perf_counter() - started)
    return statistics.median(timings["bare"]), statistics.median(timings["bwrap"])


def escapes() -> tuple[int, int]:
    """(escapes that got out, attempts) from tests/test_escapes.py's containment test, one per corpus file."""
    with tempfile.TemporaryDirectory() as name:
        report = Path(name) / "junit.xml"
        subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"),
                *("tests/test_escapes.py", "-k", "test_escape_is_contained"),
            ],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )
        cases = ElementTree.parse(report).getroot().iter("testcase")
        outcomes = [any(child.tag in {"failure", "error"} for child in case) for case in cases]
    return sum(outcomes), len(outcomes)


async def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=len(SCENES), help="How many gallery scenes.")
    parser.add_argument("--repeat", type=int, default=5, help="Start-ups per kind for the sandbox cost.")
    parser.add_argument("--skip-escapes", action="store_true")
    args = parser.parse_args()
    assert SandboxConfig().isolation is RenderIsolation.BWRAP
    with tempfile.TemporaryDirectory() as name:
        timings = [await time_scene(path, Path(name)) for path in SCENES[: args.scenes]]
    print(f"{'scene':24} {'plain':>8} {'harness':>8} {'ratio':>6}")
    for timing in timings:
        flags = (
            ""
            if timing.plain_ok and timing.harness_ok
            else "  FAILED" + ("" if timing.plain_ok else " (plain)")
        )
        ratio = timing.harness_seconds / timing.plain_seconds
        print(
            f"{timing.name:24} {timing.plain_seconds:8.2f} {timing.harness_seconds:8.2f} {ratio:6.2f}{flags}"
        )
    plain_ok = sum(t.plain_ok for t in timings)
    both_ok = sum(t.plain_ok and t.harness_ok for t in timings)
    ratios = [t.harness_seconds / t.plain_seconds for t in timings if t.plain_ok and t.harness_ok]
    print(f"gallery: {both_ok} of {plain_ok} scenes that plain Manim renders rendered through the harness")
    if ratios:
        print(f"wall time harness / plain: median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")
    bare, sandboxed = sandbox_startup(args.repeat)
    print(f"worker start-up: {bare:.3f} s bare, {sandboxed:.3f} s in bubblewrap: +{sandboxed - bare:.3f} s")
    if not args.skip_escapes:
        escaped, attempts = escapes()
        print(f"escape corpus: {escaped} of {attempts} attempts got out")


if __name__ == "__main__":
    asyncio.run(main())
