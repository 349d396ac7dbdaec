"""Manim API grounding: real signatures and one-line docs of the installed Manim, by introspection."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.metadata import version
from types import ModuleType
from typing import Any

from videojobs.plans import ScenePlan

MAX_NAMES = 30
"""At most this many entries in one prompt's reference."""
MAX_SIGNATURE_CHARS = 400
MAX_SUGGESTIONS = 5
METHOD_OWNERS = ("Mobject", "VMobject", "Scene", "MovingCameraScene", "Axes")
"""Classes whose methods a bare name (`next_to`, `get_graph`) is looked up on."""
_IDENTIFIER = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?")
_CALLED = re.compile(r"\.?\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_NO_ATTRIBUTE = re.compile(r"'(\w+)' object has no attribute '(\w+)'")
_NOT_DEFINED = re.compile(r"name '(\w+)' is not defined")
_CALL_FAILED = re.compile(r"\b(?:(\w+)\.)?(\w+)\(\) (?:got an unexpected|got multiple|missing \d|takes )")
_FAILURE_KINDS = ("AttributeError", "TypeError", "NameError")
_SPHINX_ROLE = re.compile(r":\w+:`~?\.?([^`]+)`")
DIRECTIONS = ("ORIGIN", "UP", "DOWN", "LEFT", "RIGHT", "UL", "UR", "DL", "DR", "IN", "OUT")


@cache
def _manim() -> ModuleType:
    import manim

    return manim


@cache
def public_names() -> frozenset[str]:
    """Every public class and function `from manim import *` brings in."""
    manim = _manim()
    return frozenset(
        name
        for name in dir(manim)
        if not name.startswith("_")
        and (inspect.isclass(obj := getattr(manim, name)) or inspect.isfunction(obj))
    )


def resolve(name: str) -> tuple[str, Any] | None:
    """The Manim object a name means: `Circle`, `Mobject.next_to`, or a bare method like `next_to`."""
    manim = _manim()
    owner, _, attribute = name.rpartition(".")
    if owner:
        cls = getattr(manim, owner, None) if owner in public_names() else None
        member = getattr(cls, attribute, None) if inspect.isclass(cls) else None
        return (name, member) if callable(member) else None
    if name in public_names():
        return name, getattr(manim, name)
    for owner in METHOD_OWNERS:
        member = getattr(getattr(manim, owner), name, None)
        if callable(member) and not name.startswith("_"):
            cls = getattr(manim, owner)
            defined_on = next((c for c in cls.__mro__ if name in vars(c)), cls)
            return f"{defined_on.__name__}.{name}", member
    return None


class _Shown(str):
    """Text shown as is inside a signature (no quotes around string annotations)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _shown_default(value: Any) -> Any:
    """A default as the model would write it: vector constants by name (RIGHT, ORIGIN)."""
    manim = _manim()
    if type(value).__name__ == "ndarray" and getattr(value, "shape", None) == (3,):
        for constant in DIRECTIONS:
            if (getattr(manim, constant) == value).all():
                return _Shown(constant)
    return value


def signature_line(name: str, obj: Any) -> str:
    """`Circle(radius: float | None = None, ...) — A circle.`: the call signature and the doc's first line."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        text = "(...)"
    else:
        parameters = [
            p.replace(
                annotation=_Shown(p.annotation) if isinstance(p.annotation, str) else p.annotation,
                default=_shown_default(p.default),
            )
            for p in signature.parameters.values()
            if p.name not in ("self", "cls")
        ]
        text = str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))
    if len(text) > MAX_SIGNATURE_CHARS:
        text = text[: MAX_SIGNATURE_CHARS - 4] + " ...)"
    first_line = next(iter((inspect.getdoc(obj) or "").strip().splitlines()), "").strip()
    summary = _SPHINX_ROLE.sub(r"\1", first_line)
    return f"{name}{text} — {summary}" if summary else f"{name}{text}"


def plan_names(plan: ScenePlan) -> list[str]:
    """The Manim names a scene plan mentions: its `manim_objects` list, then names in its technical text."""
    found: list[str] = []
    for item in plan.manim_objects:
        found.extend(_names_in(item, listed=True))
    found.extend(_names_in(plan.technical, listed=False))
    return list(dict.fromkeys(found))


def _names_in(text: str, *, listed: bool) -> Iterator[str]:
    """Manim names in text: `Class.method`, then classes; any function or method name when `listed`.

    Prose ("a smooth curve") yields only capitalised names (Manim's classes) and calls (`arrange(`).
    """
    called = set(_CALLED.findall(text))
    for first, second in _IDENTIFIER.findall(text):
        if second and resolve(f"{first}.{second}"):
            yield f"{first}.{second}"
        elif second and (listed or second in called) and resolve(second):
            yield second
        elif (listed or first[0].isupper() or first in called) and resolve(first):
            yield first


def reference(names: Iterable[str]) -> str:
    """The API reference block for a prompt ('' when no name is a Manim name)."""
    lines = []
    for name in list(dict.fromkeys(names)):
        resolved = resolve(name)
        if resolved is not None:
            lines.append(f"- {signature_line(*resolved)}")
    if not lines:
        return ""
    lines = list(dict.fromkeys(lines))[:MAX_NAMES]
    installed = f"the installed Manim Community v{version('manim')}"
    return "\n".join([f"Manim API reference ({installed}; use these exact signatures):", *lines])


def plan_reference(plan: ScenePlan) -> str:
    """The API reference for the names a scene plan mentions, and the listed ones Manim does not have."""
    unknown = [
        item
        for item in plan.manim_objects
        if _IDENTIFIER.fullmatch(item) and not next(_names_in(item, listed=True), None)
    ]
    note = f"Not in the installed Manim (do not use): {', '.join(unknown)}" if unknown else ""
    return "\n".join(part for part in (reference(plan_names(plan)), note) if part)


def error_reference(error: str) -> str:
    """For an AttributeError/TypeError/NameError about a Manim name: its real signature and close names."""
    if not any(kind in error for kind in _FAILURE_KINDS):
        return ""
    names: list[str] = []
    hints: list[str] = []
    for owner, attribute in _NO_ATTRIBUTE.findall(error):
        names.append(owner)
        cls = getattr(_manim(), owner, None) if owner in public_names() else None
        if inspect.isclass(cls):
            close = difflib.get_close_matches(
                attribute, [a for a in dir(cls) if not a.startswith("_")], MAX_SUGGESTIONS
            )
            if close:
                hints.append(f"{owner} has no `{attribute}`; its closest attributes: {', '.join(close)}")
    for missing in _NOT_DEFINED.findall(error):
        close = difflib.get_close_matches(missing, sorted(public_names()), MAX_SUGGESTIONS)
        if close:
            hints.append(f"Manim has no `{missing}`; its closest names: {', '.join(close)}")
            names.extend(close[:2])
    for owner, function in _CALL_FAILED.findall(error):
        names.append(f"{owner}.{function}" if owner and function != "__init__" else owner or function)
    names.extend(name for name in _CALLED.findall(error) if name in public_names() and name[0].isupper())
    block = reference(names)
    return "\n".join(part for part in (block, *hints) if part)
