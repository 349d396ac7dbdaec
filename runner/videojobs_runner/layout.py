"""Layout check of a scene while it renders: objects outside the frame's safe area and overlapping text."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, TypeAdapter

TOLERANCE = 0.02
"""Scene units a box may cross a limit by before it counts (float noise, exact `to_edge` placements)."""
MAX_REPORTED = 30
"""At most this many violations are kept per render, the farthest first."""
SNIPPET_CHARS = 40
FAULT_CHARS = 500
TEXT_CLASSES = ("Text", "MarkupText", "Paragraph", "SingleStringMathTex", "DecimalNumber", "Variable")
"""Manim classes (and their subclasses: MathTex, Tex, Title, BulletedList, Integer) that must not overlap."""
PLAIN_GROUPS = ("Group", "VGroup", "VDict")
"""Containers looked into: their members are checked one by one."""
BACKGROUNDS = ("NumberPlane", "PolarPlane", "FullScreenRectangle")
"""Classes that fill the frame by design; never reported as leaving it."""


class ViolationKind(StrEnum):
    """What is wrong with the layout."""

    OFF_FRAME = "off_frame"
    OVERLAP = "overlap"


class LayoutViolation(BaseModel):
    """One layout problem, first seen after animation `animation` (1-based count of play/wait calls)."""

    kind: ViolationKind
    objects: list[str]
    animation: int
    last_animation: int
    time_seconds: float
    distance: float
    detail: str

    def describe(self) -> str:
        """One line for people and for the layout-fix prompt."""
        seen = (
            f"animation {self.animation}"
            if self.last_animation == self.animation
            else f"animations {self.animation}-{self.last_animation}"
        )
        what = " and ".join(self.objects)
        problem = "overlap" if self.kind is ViolationKind.OVERLAP else "leaves the safe area"
        when = f"after {seen} (t={self.time_seconds:.1f}s)"
        return f"{what} {problem} by {self.distance:.2f} units {when}: {self.detail}"


VIOLATIONS = TypeAdapter(list[LayoutViolation])


def describe_violations(violations: Sequence[LayoutViolation]) -> str:
    """A bullet list of violations, one per line."""
    return "\n".join(f"- {violation.describe()}" for violation in violations)


@dataclass(frozen=True)
class Box:
    """An axis-aligned bounding box in scene units."""

    left: float
    right: float
    bottom: float
    top: float

    def shrunk(self, margin: float) -> Box:
        """The box with `margin` taken off every side."""
        return Box(self.left + margin, self.right - margin, self.bottom + margin, self.top - margin)

    def excess(self, safe: Box) -> dict[str, float]:
        """How far this box reaches past each side of `safe` (sides it stays within are left out)."""
        reach = {
            "left": safe.left - self.left,
            "right": self.right - safe.right,
            "bottom": safe.bottom - self.bottom,
            "top": self.top - safe.top,
        }
        return {side: amount for side, amount in reach.items() if amount > TOLERANCE}

    def meets(self, other: Box) -> bool:
        """Whether the two boxes share any area."""
        width, height = self.overlap(other)
        return width > 0 and height > 0

    def overlap(self, other: Box) -> tuple[float, float]:
        """Width and height of the intersection with `other` (0 or less when they do not meet)."""
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.top, other.top) - max(self.bottom, other.bottom)
        return width, height


@dataclass
class _Unit:
    """A mobject checked on its own, with its box."""

    mobject: Any
    box: Box
    text: bool
    background: bool


class LayoutProbe:
    """Checks a scene's layout after each of its animations and waits, keeping what it finds."""

    def __init__(self, margin: float) -> None:
        self.margin = margin
        self.animations = 0
        self.faults: list[str] = []
        """Errors in the check's own code: the check stops, the scene renders unchecked."""
        self._found: dict[tuple[object, ...], LayoutViolation] = {}

    def attach(self, scene: Any) -> None:
        """Wrap `scene.play` (which `wait` calls too) so every animation is followed by a check.

        3D scenes are left alone: their projected boxes say nothing reliable about the picture.
        """
        from manim import ThreeDScene

        if isinstance(scene, ThreeDScene):
            return
        play: Callable[..., None] = scene.play

        def play_then_check(*args: Any, **kwargs: Any) -> None:
            play(*args, **kwargs)
            self.animations += 1
            if not self.faults:
                self.inspect_safely(scene)

        scene.play = play_then_check

    def violations(self) -> list[LayoutViolation]:
        """The violations found so far: at most MAX_REPORTED, the farthest first."""
        ranked = sorted(self._found.values(), key=lambda v: (-v.distance, v.animation))
        return sorted(ranked[:MAX_REPORTED], key=lambda v: (v.animation, v.kind, -v.distance))

    def inspect_safely(self, scene: Any) -> None:
        """Check the scene; an error in the check itself is kept as a harness fault, never raised."""
        try:
            self.inspect(scene)
        except Exception as error:
            self.faults.append(f"layout check after animation {self.animations}: {error!r}"[:FAULT_CHARS])
            traceback.print_exc()

    def inspect(self, scene: Any) -> None:
        """Check the scene as it is now."""
        from manim import config

        camera = scene.camera
        frame_object = getattr(camera, "frame", None)
        center = camera.frame_center
        half_width, half_height = camera.frame_width / 2, camera.frame_height / 2
        frame = Box(
            center[0] - half_width, center[0] + half_width, center[1] - half_height, center[1] + half_height
        )
        framed = abs(camera.frame_width - config.frame_width) > TOLERANCE or any(
            abs(float(value)) > TOLERANCE for value in center[:2]
        )
        units = [
            unit
            for unit in _units([*scene.mobjects, *scene.foreground_mobjects])
            if unit.mobject is not frame_object
        ]
        time = float(scene.time)
        safe = frame.shrunk(self.margin)
        for unit in units:
            out_of_view = framed and not unit.box.meets(frame)  # the moved camera left it out on purpose
            if not unit.background and not out_of_view:
                self._check_frame(unit, safe, time)
        texts = [unit for unit in units if unit.text]
        for index, first in enumerate(texts):
            for second in texts[index + 1 :]:
                self._check_overlap(first, second, time)

    def _check_frame(self, unit: _Unit, safe: Box, time: float) -> None:
        excess = unit.box.excess(safe)
        if not excess:
            return
        box = unit.box
        edges = {
            "left": ("x", box.left, safe.left),
            "right": ("x", box.right, safe.right),
            "bottom": ("y", box.bottom, safe.bottom),
            "top": ("y", box.top, safe.top),
        }
        detail = "; ".join(
            f"its {side} edge is at {axis}={edge:.2f}, the safe area ends at {axis}={limit:.2f}"
            for side in excess
            for axis, edge, limit in [edges[side]]
        )
        self._record(
            (ViolationKind.OFF_FRAME, id(unit.mobject)),
            [describe(unit.mobject)],
            max(excess.values()),
            detail,
            time,
        )

    def _check_overlap(self, first: _Unit, second: _Unit, time: float) -> None:
        width, height = first.box.overlap(second.box)
        if width <= TOLERANCE or height <= TOLERANCE:
            return
        if second.mobject in first.mobject.get_family() or first.mobject in second.mobject.get_family():
            return
        detail = f"their boxes share a {width:.2f} x {height:.2f} area"
        key = (ViolationKind.OVERLAP, *sorted((id(first.mobject), id(second.mobject))))
        objects = [describe(first.mobject), describe(second.mobject)]
        self._record(key, objects, min(width, height), detail, time)

    def _record(
        self, key: tuple[object, ...], objects: list[str], distance: float, detail: str, time: float
    ) -> None:
        known = self._found.get(key)
        if known is None:
            self._found[key] = LayoutViolation(
                kind=ViolationKind(str(key[0])),
                objects=objects,
                animation=self.animations,
                last_animation=self.animations,
                time_seconds=round(time, 2),
                distance=round(distance, 2),
                detail=detail,
            )
            return
        known.last_animation = self.animations
        if distance > known.distance:
            known.distance, known.detail, known.objects = round(distance, 2), detail, objects


def _units(mobjects: Sequence[Any]) -> Iterator[_Unit]:
    """The drawn mobjects to check: plain groups are opened, everything else is one unit."""
    for mobject in mobjects:
        if type(mobject).__name__ in PLAIN_GROUPS:
            yield from _units(mobject.submobjects)
            continue
        if not _visible(mobject):
            continue
        points = mobject.get_all_points()
        if len(points) == 0:
            continue
        box = Box(
            float(points[:, 0].min()),
            float(points[:, 0].max()),
            float(points[:, 1].min()),
            float(points[:, 1].max()),
        )
        yield _Unit(mobject, box, text=_is_a(mobject, TEXT_CLASSES), background=_is_a(mobject, BACKGROUNDS))


def _is_a(mobject: Any, names: tuple[str, ...]) -> bool:
    """Whether the mobject's class or one of its bases has one of these names."""
    return any(cls.__name__ in names for cls in type(mobject).__mro__)


def _visible(mobject: Any) -> bool:
    """Whether any member of the mobject's family draws something, asked through its own kind's API.

    Vector shapes draw a fill or a stroke, images their pixels, point clouds their points; trackers and
    other plain mobjects draw nothing. Manim's `Mobject.__getattr__` invents `get_*`/`set_*` methods for
    any name, so the kind is decided by class, never by `hasattr`.
    """
    from manim import VMobject
    from manim.mobject.types.image_mobject import AbstractImageMobject
    from manim.mobject.types.point_cloud_mobject import PMobject

    for member in mobject.get_family():
        if isinstance(member, AbstractImageMobject):
            return True
        if isinstance(member, PMobject):
            if len(member.points) and float(member.rgbas[:, 3].max(initial=0.0)) > 0:
                return True
        elif isinstance(member, VMobject) and len(member.points) and _strokes_or_fills(member):
            return True
    return False


def _strokes_or_fills(member: Any) -> bool:
    """Whether a vector mobject has a visible fill or stroke."""
    stroked = member.get_stroke_width() > 0 and member.get_stroke_opacity() > 0
    return bool(member.get_fill_opacity() > 0 or stroked)


def describe(mobject: Any) -> str:
    """`Text("Newton's second…") at (0.00, 3.10)`: the class, its text if any, and where it sits."""
    text = _text_of(mobject)
    snippet = ""
    if text:
        text = " ".join(text.split())
        snippet = repr(text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…")
    x, y = mobject.get_center()[:2]
    return f"{type(mobject).__name__}({snippet}) at ({x:.2f}, {y:.2f})"


def _text_of(mobject: Any) -> str:
    """The words or LaTeX a text-like mobject shows ('' for other mobjects)."""
    for attribute in ("original_text", "tex_string"):
        value = getattr(mobject, attribute, None)
        if isinstance(value, str):
            return value
    lines = getattr(mobject, "lines_text", None)  # Paragraph
    if lines is not None:
        return _text_of(lines)
    if _is_a(mobject, ("DecimalNumber",)):
        return str(mobject.get_value())
    return ""
