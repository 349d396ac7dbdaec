"""Render-side pacing: each animation block lasts at least its narration segment; block lengths are measured.

The scene's code starts the block of narration segment k (k >= 2) with `self.next_section()`. When a block
ends (at the next section or at the end of `construct`), the pacer adds a `wait` for whatever of the
segment's spoken duration the animations did not fill. A scene with fewer sections than segments speaks
the remaining segments over its last block; extra sections join the last segment's block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FRAME_SLACK = 1e-3
"""Fraction of a frame ignored when rounding a padding wait up to whole frames (float error)."""


class Pacer:
    """Hooks one scene instance's `next_section` and `construct` to pad blocks to their narration."""

    def __init__(self, scene: Any, segments: Sequence[float]) -> None:
        self.scene = scene
        self.segments = list(segments)
        self.block = 0
        self.block_start = 0.0
        self.marks = [0]
        """Index into the file writer's partial movie files where each block starts."""
        next_section: Callable[..., None] = scene.next_section
        construct: Callable[[], None] = scene.construct

        def paced_next_section(*args: Any, **kwargs: Any) -> None:
            self._close_block(final=False)
            next_section(*args, **kwargs)

        def paced_construct() -> None:
            construct()
            self._close_block(final=True)

        scene.next_section = paced_next_section
        scene.construct = paced_construct

    def _close_block(self, *, final: bool) -> None:
        renderer = self.scene.renderer
        elapsed = float(renderer.time) - self.block_start
        last = self.block >= len(self.segments) - 1
        if not final and (elapsed <= 0 or last):  # nothing shown yet, or extra sections: keep the block open
            return
        target = sum(self.segments[self.block :]) if final else self.segments[self.block]
        fps = float(renderer.camera.frame_rate)
        frames = math.ceil((target - elapsed) * fps - FRAME_SLACK)
        if frames > 0:  # whole frames, rounded up: Manim drops a wait's last partial frame
            self.scene.wait((frames + 0.5) / fps)
        self.marks.append(len(renderer.file_writer.partial_movie_files))
        self.block += 1
        self.block_start = float(renderer.time)

    def block_seconds(self) -> list[float]:
        """Each block's duration, measured from the partial movie files the render wrote."""
        files: list[str | None] = list(self.scene.renderer.file_writer.partial_movie_files)
        durations = [_movie_seconds(Path(name)) if name else 0.0 for name in files]
        return [round(sum(durations[a:b]), 3) for a, b in zip(self.marks, self.marks[1:], strict=False)]


def _movie_seconds(path: Path) -> float:
    """A movie's duration from its video stream (frames / rate where the container gives no duration)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration or 0) / 1_000_000
