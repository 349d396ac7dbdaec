"""The layout check through real sandboxed renders: text that overlaps or leaves the frame is found."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_sandbox import LIMITS, write_scene

from videojobs.contract import Quality
from videojobs_runner.layout import Box, LayoutViolation, ViolationKind, describe_violations
from videojobs_runner.sandbox import RenderOutcome, render_scene

MARGIN = 0.3


def render(tmp_path: Path, body: str, margin: float = MARGIN) -> RenderOutcome:
    """Render the scene made of `body` with the layout check at `margin`."""
    code = write_scene(tmp_path, body)
    outcome = asyncio.run(
        render_scene(code, "Demo", Quality.LOW, tmp_path / "work", LIMITS, layout_margin=margin)
    )
    assert outcome.ok, outcome.log
    return outcome


def test_box_excess_names_only_the_sides_crossed() -> None:
    safe = Box(-6.8, 6.8, -3.7, 3.7)
    assert Box(-1, 7.5, -1, 3.71).excess(safe) == {"right": pytest.approx(0.7)}
    assert Box(-7, -5, -4, -3).excess(safe) == {"left": pytest.approx(0.2), "bottom": pytest.approx(0.3)}
    assert Box(-1, 1, -1, 1).overlap(Box(0.5, 2, 0.8, 3)) == (pytest.approx(0.5), pytest.approx(0.2))


def test_violation_reads_as_one_line() -> None:
    violation = LayoutViolation(
        kind=ViolationKind.OVERLAP,
        objects=["Text('a') at (0.00, 0.00)", "MathTex('b') at (0.10, 0.00)"],
        animation=2,
        last_animation=4,
        time_seconds=1.5,
        distance=0.4,
        detail="their boxes share a 0.40 x 0.50 area",
    )
    assert describe_violations([violation]) == (
        "- Text('a') at (0.00, 0.00) and MathTex('b') at (0.10, 0.00) overlap by 0.40 units after "
        "animations 2-4 (t=1.5s): their boxes share a 0.40 x 0.50 area"
    )


@pytest.mark.render
def test_overlapping_text_and_math_are_reported_with_when_and_how_far(tmp_path: Path) -> None:
    outcome = render(
        tmp_path,
        """
        title = Text("Newton's second law")
        formula = MathTex(r"F = m a").move_to(title.get_center() + 0.1 * DOWN)
        self.play(Write(title), run_time=0.4)
        self.play(FadeIn(formula), run_time=0.4)
        self.wait(0.2)
        """,
    )
    (violation,) = outcome.layout
    assert violation.kind is ViolationKind.OVERLAP
    assert violation.objects[0].startswith('Text("Newton\'s second law")')
    assert violation.objects[1].startswith("MathTex('F = m a')")
    assert (violation.animation, violation.last_animation) == (2, 3)  # after the FadeIn and the wait
    assert violation.time_seconds == pytest.approx(0.8, abs=0.01)
    assert 0.2 < violation.distance < 0.6  # the formula's height, less the 0.1 shift


@pytest.mark.render
def test_objects_leaving_the_frame_are_reported_per_side(tmp_path: Path) -> None:
    outcome = render(
        tmp_path,
        """
        label = Text("A label that is much too long to fit on the screen at all").scale(1.2)
        dot = Dot().move_to(LEFT * 3)
        self.play(FadeIn(label), FadeIn(dot), run_time=0.4)
        self.play(dot.animate.move_to(DOWN * 3.9), run_time=0.4)
        """,
    )
    by_object = {v.objects[0].split("(")[0]: v for v in outcome.layout}
    assert set(by_object) == {"Text", "Dot"}
    text, dot = by_object["Text"], by_object["Dot"]
    assert text.kind is dot.kind is ViolationKind.OFF_FRAME
    assert text.animation == 1 and "left edge" in text.detail and "right edge" in text.detail
    assert text.distance > 1.0
    assert dot.animation == 2 and "bottom edge" in dot.detail
    assert dot.distance == pytest.approx(3.9 + 0.08 - (4 - MARGIN), abs=0.02)  # Dot radius 0.08


@pytest.mark.render
def test_a_clean_scene_reports_nothing(tmp_path: Path) -> None:
    outcome = render(
        tmp_path,
        """
        title = Text("Areas").to_edge(UP)
        formula = MathTex(r"A = \\pi r^2").next_to(title, DOWN, buff=0.5)
        circle = Circle(radius=1.5).next_to(formula, DOWN)
        label = Tex("radius $r$").next_to(circle, RIGHT)
        self.play(Write(title), FadeIn(formula), run_time=0.4)
        self.play(Create(circle), FadeIn(label), run_time=0.4)
        self.play(FadeOut(formula), run_time=0.2)
        hidden = Text("later").set_opacity(0).move_to(title)
        self.add(hidden)
        self.wait(0.2)
        """,
    )
    assert outcome.layout == ()


@pytest.mark.render
def test_a_moving_camera_moves_the_safe_area(tmp_path: Path) -> None:
    code = tmp_path / "scene.py"
    code.write_text(
        "from manim import *\n\n\nclass Demo(MovingCameraScene):\n    def construct(self):\n"
        "        far = Text('Far away').move_to(RIGHT * 9)\n"
        "        self.add(far)\n"
        "        self.play(self.camera.frame.animate.move_to(far), run_time=0.3)\n"
        "        self.play(far.animate.shift(UP * 0.1), run_time=0.2)\n"
    )
    outcome = asyncio.run(
        render_scene(code, "Demo", Quality.LOW, tmp_path / "work", LIMITS, layout_margin=MARGIN)
    )
    assert outcome.ok, outcome.log
    assert outcome.layout == ()  # off the default frame, but the camera followed it before any check
