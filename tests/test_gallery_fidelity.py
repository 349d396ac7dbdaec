"""Gallery fidelity: corpus scenes pass the static check and render through the harness as in plain Manim."""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from videojobs.contract import Quality
from videojobs_runner.codecheck import check_scene_code
from videojobs_runner.sandbox import RenderLimits, RenderOutcome, render_scene

CORPUS = Path(__file__).parent / "corpus" / "gallery"
SCENES = sorted(CORPUS.glob("*.py"))
LIMITS = RenderLimits(timeout_seconds=240, memory_mb=4096, cpu_seconds=240)
PLAIN_TIMEOUT_SECONDS = 240
MAX_MEAN_DIFFERENCE = 0.5
"""Mean absolute difference per RGB channel (0-255) allowed between two frames that must match.

Both movies come from Manim's own writer with the same settings; today they are byte for byte the same.
"""
MAX_STILL_DIFFERENCE = 3.0
"""The same for a clip frame against plain Manim's PNG (YUV 4:2:0 blurs colour edges: up to 1.6 seen)."""
CUT_BY_THE_CAMERA = {"camera_follow": {"Axes", "ParametricFunction"}}
"""Objects that a zoomed-in camera frame cuts on purpose, per scene: the only layout violations allowed.

Every other corpus scene keeps what it draws inside the frame, with no overlapping text. An object wholly
outside a moved or zoomed camera frame (the curve's end dots in camera_follow) is no violation.
"""


@dataclass(frozen=True)
class PlainRender:
    """What `manim -ql` wrote: a movie for an animated scene, a PNG for a still one."""

    returncode: int
    log: str
    movie: Path | None
    still: Path | None


def scene_class_of(code: str) -> str:
    """The name of the file's one class (the corpus holds one scene class per file)."""
    classes = [node.name for node in ast.parse(code).body if isinstance(node, ast.ClassDef)]
    assert len(classes) == 1, classes
    return classes[0]


async def render_plain(code_path: Path, scene_class: str, media_dir: Path) -> PlainRender:
    """Render with the plain `manim` command line at low quality into `media_dir`."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "manim",
        "render",
        "-ql",
        "--media_dir",
        str(media_dir),
        "--progress_bar",
        "none",
        "-v",
        "WARNING",
        str(code_path),
        scene_class,
        cwd=media_dir.parent,
        env={**os.environ, "MPLCONFIGDIR": str(media_dir.parent / "matplotlib")},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), PLAIN_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        return PlainRender(-1, f"plain manim timed out after {PLAIN_TIMEOUT_SECONDS}s", None, None)
    movies = sorted((media_dir / "videos").glob(f"**/{scene_class}.mp4"))
    stills = sorted((media_dir / "images").glob(f"**/{scene_class}*.png"))
    return PlainRender(
        process.returncode or 0,
        output.decode("utf-8", errors="replace"),
        movies[0] if movies else None,
        stills[0] if stills else None,
    )


async def render_both(code_path: Path, scene_class: str, tmp_path: Path) -> tuple[PlainRender, RenderOutcome]:
    """Plain Manim and the project's harness, side by side (two processes, one per core)."""
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    return await asyncio.gather(
        render_plain(code_path, scene_class, plain_dir / "media"),
        render_scene(code_path, scene_class, Quality.LOW, tmp_path / "harness", LIMITS, narration=()),
    )


def frames_of(path: Path) -> list[np.ndarray]:
    """Every frame of a video (or the one frame of an image) as an RGB array."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def seconds_of(path: Path) -> float:
    """A movie's duration from its container."""
    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1_000_000


def mean_difference(first: np.ndarray, second: np.ndarray) -> float:
    """Mean absolute difference per pixel and channel of two same-sized RGB frames."""
    assert first.shape == second.shape, (first.shape, second.shape)
    return float(np.abs(first.astype(np.int16) - second.astype(np.int16)).mean())


def class_name(described: str) -> str:
    """`Axes` for a layout report's `Axes() at (0.00, 0.00)`."""
    return described.split("(", 1)[0]


def sampled(count: int) -> list[int]:
    """The first, middle and last frame index of a clip with `count` frames."""
    return sorted({0, count // 2, count - 1})


@pytest.mark.parametrize("path", SCENES, ids=lambda path: path.stem)
def test_corpus_scene_passes_the_static_check(path: Path) -> None:
    code = path.read_text()
    check = check_scene_code(code)
    assert check.issues == []
    assert check.ok
    assert check.scene_class == scene_class_of(code)


def test_corpus_covers_the_whole_gallery() -> None:
    assert len(SCENES) == 27
    readme = (CORPUS / "README.md").read_text()
    assert "MIT" in readme
    for path in SCENES:
        assert f"`{path.name}`" in readme, f"{path.name} is missing from the corpus README"


@pytest.mark.render
@pytest.mark.parametrize("path", SCENES, ids=lambda path: path.stem)
def test_corpus_scene_renders_like_plain_manim(path: Path, tmp_path: Path) -> None:
    scene_class = scene_class_of(path.read_text())
    plain, outcome = asyncio.run(render_both(path, scene_class, tmp_path))
    assert plain.returncode == 0, f"plain manim failed:\n{plain.log[-3000:]}"
    assert plain.movie or plain.still, f"plain manim wrote neither a movie nor a PNG:\n{plain.log[-3000:]}"
    assert outcome.ok, f"the harness failed ({outcome.failure}): {outcome.error}"
    assert outcome.video is not None
    allowed = CUT_BY_THE_CAMERA.get(path.stem, set())
    unexpected = [
        violation.describe()
        for violation in outcome.layout
        if not {class_name(name) for name in violation.objects} <= allowed
    ]
    assert not unexpected, "layout violations in a valid scene:\n" + "\n".join(unexpected)
    clip = frames_of(outcome.video)
    assert clip, "the harness's clip has no frames"
    if plain.movie is not None:
        expected = frames_of(plain.movie)
        assert len(clip) == len(expected), f"{len(clip)} frames through the harness, {len(expected)} plain"
        assert outcome.duration_seconds == pytest.approx(seconds_of(plain.movie), abs=0.1)
        for index in sampled(len(expected)):
            difference = mean_difference(clip[index], expected[index])
            assert difference <= MAX_MEAN_DIFFERENCE, f"frame {index} differs by {difference:.2f}"
    else:
        assert plain.still is not None
        (picture,) = frames_of(plain.still)
        for index in sampled(len(clip)):
            difference = mean_difference(clip[index], picture)
            assert difference <= MAX_STILL_DIFFERENCE, f"clip frame {index} differs by {difference:.2f}"
