"""Prompt texts for each pipeline step; every prompt starts with a `Task:` line naming the step."""

from __future__ import annotations

import json
from dataclasses import dataclass

from videojobs.contract import QUALITY_PRESETS, Quality
from videojobs.languages import LATIN_FONT, language, primary_subtag
from videojobs.plans import SceneOutline, ScenePlan, VideoOutline
from videojobs_runner.llm import Message
from videojobs_runner.tts import SceneNarration

SYSTEM = (
    "You are an expert educator and Manim Community Edition animator. You design short, clear, "
    "visually precise explainer videos and write correct Manim code for the installed version."
)

LAYOUT_RULES = """Layout rules (the frame is 14.22 x 8 units: x within -7.1..7.1, y within -4..4):
- Keep every object at least 0.5 units inside the frame edges.
- Keep at least 0.3 units between separate objects; text and formulas must never overlap.
- Position objects relative to each other (next_to, arrange, to_edge, shift) rather than with
  absolute coordinates; scale long text down or split it over lines.
- Remove or fade out objects that are no longer needed before adding new ones in their place."""

CODE_RULES = """Code rules:
- Use only `from manim import *` plus numpy, math and random; no file, network or OS access.
- Exactly one class, `{class_name}`, subclassing `Scene` (or `MovingCameraScene`), with `construct`.
- Use only Manim Community v0.22 APIs; MathTex/Tex need valid LaTeX; prefer Text for plain words.
- Keep the scene short: about {seconds} seconds of animation in total (run_time and wait included).
- Reply with the complete file in one ```python fenced block and nothing else."""


NARRATION_TIMING = """Narration timing: the voice-over is spoken in {count} segments (seconds in brackets):
{segments}
Write construct() as {count} blocks in this order, one per segment, showing what that segment says.
Start each block after the first with `self.next_section()`. Give each block animations (run_time and
wait together) of about its segment's duration; a shorter block is padded with a wait to fit the voice."""


LANGUAGE_RULES = """Language: write the narration, the titles and every word shown on screen in {name}
(BCP 47 tag {tag}). Formulas stay LaTeX, and JSON keys stay exactly as the schema names them."""

FONT_RULES = """- On-screen words go in {text_class}() (never in Tex or MathTex, whose LaTeX has no {name}
  fonts), each with font="{font}".{direction}"""

RTL_NOTE = """ Give MarkupText() the string in reading order (Pango shapes and orders
  right-to-left script itself; never reverse it) and escape &, < and > as &amp;, &lt; and &gt;.
  Do not use Text() for it: Manim's Text() draws short right-to-left strings as nothing."""


def language_rules(tag: str) -> str:
    """What the plan prompts say of the video's language: nothing for English, else a paragraph."""
    if primary_subtag(tag) == "en":
        return ""
    spoken = language(tag)
    return "\n" + LANGUAGE_RULES.format(name=spoken.name if spoken else f"the language {tag}", tag=tag)


def font_rules(tag: str) -> str:
    """The code rule naming the font family Text() needs for the language's script (none in English)."""
    if primary_subtag(tag) == "en":
        return ""
    spoken = language(tag)
    name = spoken.name if spoken else tag
    font = spoken.font if spoken else LATIN_FONT
    right_to_left = spoken is not None and spoken.right_to_left
    return "\n" + FONT_RULES.format(
        name=name,
        font=font,
        text_class="MarkupText" if right_to_left else "Text",
        direction=RTL_NOTE if right_to_left else "",
    )


def _json_schema(model: type[VideoOutline] | type[ScenePlan]) -> str:
    return json.dumps(model.model_json_schema(), indent=1)


def outline_messages(
    topic: str, description: str, min_scenes: int, max_scenes: int, tag: str
) -> list[Message]:
    """Ask the planner for the scene outline."""
    context = f"\nContext from the requester: {description}" if description else ""
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"""Task: outline
Plan an explainer video on the topic: {topic}{context}

Break it into {min_scenes} to {max_scenes} scenes that build on each other, from intuition to
the key idea to an example.{language_rules(tag)}
Reply with one JSON object matching this JSON schema, and nothing else:
{_json_schema(VideoOutline)}""",
        },
    ]


def scene_plan_messages(
    outline: VideoOutline, index: int, revision: SceneRevision | None, tag: str
) -> list[Message]:
    """Ask for the storyboard, technical plan and narration of scene `index` (1-based), or its revise."""
    scene = outline.scenes[index - 1]
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"""Task: {_revise(revision)}scene plan {index} of {len(outline.scenes)}
Video: {outline.title}
All scenes: {"; ".join(f"{i}. {s.title}" for i, s in enumerate(outline.scenes, 1))}

Plan scene {index}, "{scene.title}": {scene.purpose}
Key points: {"; ".join(scene.key_points) or "-"}

Give (1) the visual storyboard step by step, (2) the technical implementation: which Manim
objects and animations, and where each object sits, (3) the narration the voice-over speaks
(2-5 sentences), (4) the list of Manim classes and functions used.
{LAYOUT_RULES}{language_rules(tag)}{revision.plan_text() if revision else ""}
Reply with one JSON object matching this JSON schema, and nothing else:
{_json_schema(ScenePlan)}""",
        },
    ]


def scene_class_name(index: int) -> str:
    """The class name asked for scene `index`."""
    return f"Scene{index}"


@dataclass(frozen=True)
class SceneRevision:
    """A scene made again in a revise: what to change, and the plan and code it had in the revised job."""

    instructions: str
    plan: ScenePlan | None = None
    code: str | None = None

    def plan_text(self) -> str:
        """The previous plan (if there was one) and the change asked, as the scene-plan prompt shows them."""
        previous = f" Its previous plan, as JSON:\n{self.plan.model_dump_json(indent=1)}" if self.plan else ""
        return f"""

This scene is being revised.{previous}
Change it as these instructions ask, and keep everything they do not touch: {self.instructions}"""


def _revise(revision: SceneRevision | None) -> str:
    """The word that makes a task slug a revise's (`revise-scene-plan-2-of-3`, `revise-scene-code-2`)."""
    return "revise " if revision else ""


@dataclass(frozen=True)
class SceneBrief:
    """What every scene-code prompt says of its scene: where it stands, its plans and its narration."""

    index: int
    scene: SceneOutline
    plan: ScenePlan
    quality: Quality
    narration: SceneNarration | None = None
    revision: SceneRevision | None = None
    language: str = "en"

    def plan_text(self) -> str:
        """The scene's title, purpose, three plans (and a revise's change) as the prompts show them."""
        change = f"\n\nChange asked for in this revise: {self.revision.instructions}" if self.revision else ""
        return (
            f"Scene title: {self.scene.title}\nPurpose: {self.scene.purpose}\n\n"
            f"Storyboard:\n{self.plan.storyboard}\n\nTechnical plan:\n{self.plan.technical}\n\n"
            f"Narration:\n{self.plan.narration}{change}"
        )


def _code_rules(brief: SceneBrief) -> str:
    plan, narration, quality, index = brief.plan, brief.narration, brief.quality, brief.index
    words = len(plan.narration.split())
    spoken = sum(narration.seconds) if narration and narration.segments else words / 2.5
    seconds = max(4, min(40, round(spoken)))
    preset = QUALITY_PRESETS[quality]
    rules = CODE_RULES.format(class_name=scene_class_name(index), seconds=seconds)
    rules += font_rules(brief.language)
    timing = f"\n{_timing_rules(narration)}" if narration and len(narration.segments) > 1 else ""
    return f"{rules}\nIt renders at {preset.width}x{preset.height}, {preset.fps} fps.{timing}"


def _timing_rules(narration: SceneNarration) -> str:
    """How the code keeps in step with the voice-over: one block per spoken segment."""
    lines = [f'{n}. ({s.seconds:.1f} s) "{s.text}"' for n, s in enumerate(narration.segments, 1)]
    return NARRATION_TIMING.format(count=len(lines), segments="\n".join(lines))


def _with_reference(reference: str) -> str:
    return f"\n\n{reference}" if reference else ""


def _scene_code_task(request: str, brief: SceneBrief) -> list[Message]:
    """A scene-code request (`request` names the task, gives the scene), then the layout and code rules."""
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": f"""{request}

{LAYOUT_RULES}
{_code_rules(brief)}""",
        },
    ]


def code_messages(brief: SceneBrief, reference: str = "") -> list[Message]:
    """Ask for the Manim code of one scene; `reference` gives the signatures of the Manim names it uses."""
    previous = brief.revision.code if brief.revision else None
    earlier = (
        f"\n\nThe scene's code before this revise (change only what the plan now asks):\n"
        f"```python\n{previous}```"
        if previous
        else ""
    )
    request = f"""Task: {_revise(brief.revision)}scene code {brief.index}
Write the Manim code for this scene.

{brief.plan_text()}{earlier}{_with_reference(reference)}"""
    return _scene_code_task(request, brief)


def fix_messages(brief: SceneBrief, code: str, error: str, reference: str = "") -> list[Message]:
    """Ask for a corrected version of code that failed the static check or the render.

    `reference` holds the real signatures of the Manim names the error is about.
    """
    request = f"""Task: fix scene code {brief.index}
This Manim code for the scene below failed. Fix the cause and return the whole corrected file.

{brief.plan_text()}

Code:
```python
{code}
```

What went wrong:
{error}{_with_reference(reference)}"""
    return _scene_code_task(request, brief)


def layout_fix_messages(brief: SceneBrief, code: str, violations: str) -> list[Message]:
    """Ask for a version of code that rendered, with the layout problems the render's check found fixed."""
    request = f"""Task: fix scene layout {brief.index}
This Manim code rendered, but the layout check found objects outside the frame's safe area or text
and formulas overlapping. Move, scale, arrange or fade out objects so none of these problems is left,
keep the animations and their timing, and return the whole corrected file.

{brief.plan_text()}

Code:
```python
{code}
```

Layout problems (x, y are scene coordinates of each object's centre; animations count self.play and
self.wait calls from 1):
{violations}"""
    return _scene_code_task(request, brief)
