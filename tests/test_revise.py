"""Revise through the real parts: in-process runs → litellm over HTTP → fake LLM → Manim renders → ffmpeg."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from cli_runs import read_json
from fake_llm import FakeLLM
from job_runs import resume, run_new, run_revise

from videojobs.contract import GenerationRequest, JobStatus, Phase, Quality, Revision, Stage
from videojobs.settings import Settings
from videojobs_runner.jobs import create_job, resolve
from videojobs_runner.render_cache import CACHE_PREFIX

pytestmark = [pytest.mark.render, pytest.mark.llm_fixture("revise")]

CUBED = "Make the formula x cubed, in yellow."


def settings_for(out: Path, **overrides: object) -> Settings:
    """Test settings: low quality, storage in `out`."""
    settings = Settings(output_dir=out, default_quality=Quality.LOW, max_fix_attempts=2)
    return settings.model_copy(update=overrides)


def parent_job(settings: Settings) -> JobStatus:
    """The three-scene job `parent`, run to its end."""
    status = run_new(settings, GenerationRequest(topic="Test topic"), "parent")
    assert status.phase is Phase.SUCCEEDED, status.error
    return status


def render_logs(job: Path, scene: int) -> list[str]:
    """A scene's render logs: one per render or render-cache lookup made in this job."""
    return sorted(p.name for p in (job / f"scenes/{scene:02d}").glob("code_v*.log"))


def cached_renders(out: Path) -> set[str]:
    """The scene renders in the shared render cache."""
    return {p.name for p in (out / CACHE_PREFIX).glob("*.mp4")}


def prompt(fake_llm: FakeLLM, task: str) -> str:
    """The user message of the first request for `task`."""
    return str(next(r for r in fake_llm.requests if r["task"] == task)["messages"][-1]["content"])


def test_a_revise_of_one_scene_makes_only_that_scene_again(fake_llm: FakeLLM, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    parent_job(settings)
    calls_before, cached_before = len(fake_llm.requests), cached_renders(tmp_path)

    status = run_revise(settings, Revision(parent="parent", instructions=CUBED, scenes=[2]), "child")
    assert status.phase is Phase.SUCCEEDED, status.error

    assert fake_llm.tasks()[calls_before:] == ["revise-scene-plan-2-of-3", "revise-scene-code-2"]
    plan_prompt = prompt(fake_llm, "revise-scene-plan-2-of-3")
    assert CUBED in plan_prompt and "The formula x squared is written in the middle." in plan_prompt
    code_prompt = prompt(fake_llm, "revise-scene-code-2")
    assert CUBED in code_prompt and "x cubed is written" in code_prompt
    assert 'formula = MathTex(r"x^2")' in code_prompt  # the parent's final code, to change
    # Scenes 1 and 3 were neither rendered nor looked up: the parent's clips, byte for byte.
    child, parent = tmp_path / "child", tmp_path / "parent"
    for scene in (1, 3):
        assert render_logs(child, scene) == []
        for name in ("scene.mp4", "thumbnail.jpg"):
            clip = f"scenes/{scene:02d}/{name}"
            assert (child / clip).read_bytes() == (parent / clip).read_bytes()
    assert render_logs(child, 2) == ["code_v1.log"]
    assert len(cached_renders(tmp_path) - cached_before) == 1  # scene 2's new render, nothing else
    assert (child / "outline.json").read_bytes() == (parent / "outline.json").read_bytes()

    metadata = read_json(child / "metadata.json")
    assert (metadata["revision_of"], metadata["revised_scenes"]) == ("parent", [2])
    assert [s["title"] for s in metadata["scenes"]] == ["Shapes", "Formula", "Summary"]
    assert metadata["usage"]["llm_calls"] == 2
    assert metadata["scene_renders"][1]["fix_attempts"] == 0
    assert (child / "video.mp4").stat().st_size > 0
    assert read_json(child / "job.json")["request"]["revision"]["parent"] == "parent"
    assert "x cubed" in (child / "subtitles.vtt").read_text()
    assert read_json(parent / "metadata.json")["revision_of"] is None


def test_a_whole_video_revise_keeps_the_outline_and_remakes_every_scene(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    parent_job(settings)
    calls_before = len(fake_llm.requests)

    status = run_revise(settings, Revision(parent="parent", instructions="Everything in yellow."), "child")
    assert status.phase is Phase.SUCCEEDED, status.error

    expected = [f"revise-scene-{kind}" for n in (1, 2, 3) for kind in (f"plan-{n}-of-3", f"code-{n}")]
    assert Counter(fake_llm.tasks()[calls_before:]) == Counter(expected)
    assert read_json(tmp_path / "child/metadata.json")["revised_scenes"] == [1, 2, 3]
    for scene in (1, 2, 3):
        assert render_logs(tmp_path / "child", scene) == ["code_v1.log"]


def test_a_resumed_revise_is_not_seeded_again_and_repeats_nothing(fake_llm: FakeLLM, tmp_path: Path) -> None:
    parent_job(settings_for(tmp_path))
    broken = (Path(__file__).parent / "fixtures/llm/three-scenes/scene-code-3.1.txt").read_text()
    fake_llm.replies["revise-scene-code-2"] = [broken.replace("Scene3", "Scene2")]
    calls_before = len(fake_llm.requests)
    revision = Revision(parent="parent", instructions=CUBED, scenes=[2])
    first = run_revise(settings_for(tmp_path, max_fix_attempts=0), revision, "child")
    assert first.phase is Phase.FAILED and first.error is not None
    assert first.error.stage is Stage.RENDERING
    assert fake_llm.tasks()[calls_before:] == ["revise-scene-plan-2-of-3", "revise-scene-code-2"]

    shutil.rmtree(tmp_path / "parent")  # a second seeding would fail: the parent is gone
    calls_before = len(fake_llm.requests)
    second = resume(settings_for(tmp_path), "child")
    assert second.phase is Phase.SUCCEEDED, second.error
    assert fake_llm.tasks()[calls_before:] == ["fix-scene-code-2"]
    for scene in (1, 3):
        assert render_logs(tmp_path / "child", scene) == []


def test_a_revise_that_cannot_fit_its_parent_fails_at_once_and_says_why(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    request = GenerationRequest(topic="Test topic")
    create_job(resolve(request, settings, "parent"), settings)  # never run: no outline

    def error_of(revision: Revision, job_id: str, quality: Quality = Quality.LOW) -> str:
        revise = request.model_copy(update={"revision": revision, "quality": quality})
        status = run_new(settings, revise, job_id)
        assert status.phase is Phase.FAILED and status.error is not None
        assert status.error.stage is Stage.INITIALIZING and not status.error.recoverable
        text = f"{status.error.message} {status.error.suggestion}"
        assert str(tmp_path) not in text  # no server paths
        return text

    assert "job 'gone' does not exist" in error_of(Revision(parent="gone", instructions="x"), "a")
    assert "job 'parent' has no outline yet" in error_of(Revision(parent="parent", instructions="x"), "b")
    outline = (Path(__file__).parent / "fixtures/llm/three-scenes/outline.1.txt").read_text()
    (tmp_path / "parent/outline.json").write_text(outline[outline.index("{") : outline.rindex("}") + 1])
    too_far = error_of(Revision(parent="parent", instructions="x", scenes=[2, 5]), "c")
    assert "job 'parent' has 3 scenes; there is no scene 5" in too_far and "from 1 to 3" in too_far
    other = error_of(Revision(parent="parent", instructions="x"), "d", Quality.HIGH)
    assert "must keep its quality (low) and voice" in other
    assert fake_llm.tasks() == []
