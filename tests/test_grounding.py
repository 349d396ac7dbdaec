"""Manim API grounding: names found in plans and errors, and signatures read from the installed Manim."""

from __future__ import annotations

import inspect

import manim

from videojobs.contract import Quality
from videojobs.plans import SceneOutline, ScenePlan
from videojobs_runner import grounding, prompts


def plan(technical: str, objects: list[str]) -> ScenePlan:
    """A scene plan mentioning Manim names."""
    return ScenePlan(storyboard="-", technical=technical, narration="-", manim_objects=objects)


def test_signature_line_is_the_installed_signature_with_the_docs_first_line() -> None:
    line = grounding.signature_line("Circle", manim.Circle)
    for parameter in inspect.signature(manim.Circle).parameters:
        assert parameter in line
    assert line.startswith("Circle(radius: float | None = None, color: ParsableManimColor = ")
    assert line.endswith(" — A circle.")
    next_to = grounding.signature_line(*grounding.resolve("next_to") or ("", None))
    assert next_to.startswith("Mobject.next_to(mobject_or_point: ")
    assert "direction: Vector3DLike = RIGHT" in next_to and "buff: float = 0.25" in next_to
    assert ":class:" not in next_to  # Sphinx roles are reduced to their text


def test_plan_names_come_from_the_list_and_from_classes_and_calls_in_the_text() -> None:
    names = grounding.plan_names(
        plan(
            "A Circle and a smooth curve; self.play(Transform(a, b)); labels via arrange( and Axes.plot.",
            ["MathTex", "next_to", "self.wait", "ShowCreation"],
        )
    )
    assert names == ["MathTex", "next_to", "wait", "Circle", "play", "Transform", "arrange", "Axes.plot"]
    assert "smooth" not in names  # a rate function, but here just an English word


def test_plan_reference_flags_listed_names_that_manim_does_not_have() -> None:
    reference = grounding.plan_reference(plan("-", ["Circle", "ShowCreation"]))
    assert reference.splitlines()[0].startswith(
        f"Manim API reference (the installed Manim Community v{manim.__version__}"
    )
    assert reference.splitlines()[1] == "- " + grounding.signature_line("Circle", manim.Circle)
    assert reference.splitlines()[-1] == "Not in the installed Manim (do not use): ShowCreation"
    assert grounding.plan_reference(plan("Just words here.", [])) == ""


def test_error_reference_names_the_failing_call_and_close_attributes() -> None:
    type_error = (
        '  File "scene.py", line 7, in construct\n    shape = Circle(radius=1, side_length=2)\n'
        "TypeError: Mobject.__init__() got an unexpected keyword argument 'side_length'"
    )
    reference = grounding.error_reference(type_error)
    assert "- " + grounding.signature_line("Circle", manim.Circle) in reference
    assert "- Mobject(color: " in reference
    method = grounding.error_reference(
        "TypeError: Mobject.next_to() got an unexpected keyword argument 'offset'"
    )
    assert "- Mobject.next_to(mobject_or_point: " in method
    attribute = grounding.error_reference("AttributeError: 'Square' object has no attribute 'set_side'")
    assert "- Square(side_length: float = 2.0" in attribute
    assert "Square has no `set_side`; its closest attributes: " in attribute
    assert "Manim has no `Creat`; its closest names: Create" in grounding.error_reference(
        "NameError: name 'Creat' is not defined"
    )
    assert grounding.error_reference("ZeroDivisionError: division by zero") == ""


def test_prompts_carry_the_reference() -> None:
    scene = SceneOutline(title="Shapes", purpose="Show shapes.")
    scene_plan = plan("A Circle.", ["Circle"])
    reference = grounding.plan_reference(scene_plan)
    code = prompts.code_messages(prompts.SceneBrief(1, scene, scene_plan, Quality.LOW), reference=reference)[
        -1
    ]["content"]
    assert reference in code
    fix_request = prompts.fix_messages(
        prompts.SceneBrief(1, scene, scene_plan, Quality.LOW), "code", "boom", "REF"
    )
    fix = fix_request[-1]["content"]
    assert "boom\n\nREF\n" in fix
