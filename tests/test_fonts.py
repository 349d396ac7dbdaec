"""Text() in other scripts renders real glyphs in the sandbox: the font each language's prompt names."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from videojobs.contract import Quality
from videojobs.languages import LANGUAGES
from videojobs_runner.sandbox import RenderLimits, render_scene

CHARACTERS = {"zh": "圆方数", "ja": "かたち", "hi": "कगम", "ar": "\u0628\u062c\u0633"}
"""Per language, three characters of the same width: as tofu they would all draw the same box.

Arabic goes through MarkupText(), as its code prompt asks: Manim's Text() draws short right-to-left
strings as nothing (an empty SVG from its Pango layout), MarkupText() draws them.
"""


@pytest.mark.render
def test_text_in_each_script_draws_distinct_glyphs(tmp_path: Path) -> None:
    shown = [(LANGUAGES[tag], ch) for tag, chars in CHARACTERS.items() for ch in chars]
    lines = [
        f"t = {'MarkupText' if spoken.right_to_left else 'Text'}({ch!r}, font={spoken.font!r}).scale(4)\n"
        "        self.add(t)\n        self.wait(1)\n        self.remove(t)"
        for spoken, ch in shown
    ]
    code = tmp_path / "scene.py"
    code.write_text(
        "from manim import *\n\nclass Glyphs(Scene):\n    def construct(self):\n        "
        + "\n        ".join(lines)
        + "\n"
    )
    limits = RenderLimits(timeout_seconds=300, memory_mb=2048, cpu_seconds=300)
    outcome = asyncio.run(render_scene(code, "Glyphs", Quality.LOW, tmp_path / "work", limits))
    assert outcome.ok and outcome.video is not None, outcome.log
    with av.open(str(outcome.video)) as container:
        frames = [f.to_ndarray(format="gray").astype(float) for f in container.decode(video=0)]
    fps = len(frames) / len(shown)
    ink = [frames[int((n + 0.5) * fps)] for n in range(len(shown))]
    assert all((frame > 128).mean() > 0.001 for frame in ink)  # something is drawn for every character
    for (a, frame_a), (b, frame_b) in itertools.combinations(zip(shown, ink, strict=True), 2):
        assert np.abs(frame_a - frame_b).mean() > 0.5, f"{a[1]} and {b[1]} draw the same: tofu"
