"""Layout fixes, API grounding and the shared render cache, end to end: CLI → litellm → fake LLM → Manim."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cli_runs import cli_env, job_folders, read_json, run_cli
from fake_llm import FakeLLM
from s3_server import S3Server

from videojobs_runner import grounding

pytestmark = pytest.mark.render


def request_text(fake_llm: FakeLLM, task: str, nth: int = 0) -> str:
    """The user message of the `nth` request for a task."""
    requests = [r for r in fake_llm.requests if r["task"] == task]
    return str(requests[nth]["messages"][-1]["content"])


def signature(name: str) -> str:
    """The reference line grounding gives for a Manim name."""
    resolved = grounding.resolve(name)
    assert resolved is not None
    return grounding.signature_line(*resolved)


def layout_of(job: Path, scene: int, version: int) -> list[dict[str, Any]]:
    """The layout check stored for one code version."""
    return list(json.loads((job / f"scenes/{scene:02d}/code_v{version}.layout.json").read_text()))


@pytest.mark.llm_fixture("layout-fix")
def test_layout_fix_loop_and_grounded_prompts(fake_llm: FakeLLM, tmp_path: Path) -> None:
    result = run_cli(
        "generate", "Test topic", "--out", str(tmp_path), env=cli_env(MAX_LAYOUT_FIX_ATTEMPTS="2")
    )
    assert result.returncode == 0, result.stderr
    (job,) = job_folders(tmp_path)

    # Scene 1: overlapping title and formula → layout fix 1 pushes the circle off the frame (farther than
    # the overlap, so v1 stays the best and the second request is about v1 again) → layout fix 2 is clean.
    assert Counter(fake_llm.tasks())["fix-scene-layout-1"] == 2
    (overlap,) = layout_of(job, 1, 1)
    assert overlap["kind"] == "overlap" and overlap["objects"][0].startswith("Text('Circles and squares')")
    (off_frame,) = layout_of(job, 1, 2)
    assert off_frame["kind"] == "off_frame" and off_frame["objects"][0].startswith("Circle()")
    assert layout_of(job, 1, 3) == []
    first_request = request_text(fake_llm, "fix-scene-layout-1")
    assert "Text('Circles and squares')" in first_request and "MathTex('A = \\\\pi r^2')" in first_request
    assert "overlap by" in first_request and 'title = Text("Circles and squares")\n' in first_request
    assert request_text(fake_llm, "fix-scene-layout-1", 1) == first_request
    render = read_json(job / "scenes/01/render.json")
    assert (render["version"], render["layout_violations"], render["layout_fix_attempts"]) == (3, [], 2)
    metadata = read_json(job / "metadata.json")
    assert (
        metadata["layout_violations_left"] == 0 and metadata["fix_attempts"] == 4
    )  # 2 layout + 2 error fixes
    assert read_json(job / "status.json")["message"] == "Video generation completed"

    # The code prompt carries the real signatures of the names the plan lists (Circle, Square, ...).
    circle = signature("Circle")
    assert "radius: float | None = None" in circle
    assert circle in request_text(fake_llm, "scene-code-1")
    assert signature("Transform") in request_text(fake_llm, "scene-code-1")
    # The TypeError from Circle(side_length=...) brings Circle's signature into the fix prompt.
    fix = request_text(fake_llm, "fix-scene-code-2")
    assert "unexpected keyword argument 'side_length'" in fix and circle in fix


@pytest.mark.llm_fixture("layout-fix")
def test_violations_left_are_reported_and_an_identical_job_comes_from_the_cache(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    env = cli_env(MAX_LAYOUT_FIX_ATTEMPTS="1")
    first = run_cli("generate", "Test topic", "--out", str(tmp_path), "--job-id", "first", env=env)
    assert first.returncode == 0, first.stderr  # violations left do not fail the job
    metadata = read_json(tmp_path / "first/metadata.json")
    assert metadata["layout_violations_left"] == 1 and metadata["render_cache_hits"] == 0
    scene = metadata["scene_renders"][0]
    assert scene["layout_fix_attempts"] == 1 and scene["code_version"] == 1  # the fix made it worse
    assert scene["layout_violations"][0]["kind"] == "overlap"
    status = read_json(tmp_path / "first/status.json")
    assert status["phase"] == "Succeeded" and "1 layout violation(s) left" in status["message"]
    cached = sorted(p.name for p in (tmp_path / "_cache/renders").iterdir())
    assert len(cached) == 2 * 4  # scene 1 v1 and v2, scene 2 v2, scene 3 v2: a video and a record each

    fake_llm.served.clear()  # the same replies again
    second = run_cli("generate", "Test topic", "--out", str(tmp_path), "--job-id", "second", env=env)
    assert second.returncode == 0, second.stderr
    again = read_json(tmp_path / "second/metadata.json")
    assert again["render_cache_hits"] == 3 and again["layout_violations_left"] == 1
    assert again["scene_renders"][0]["layout_violations"] == scene["layout_violations"]
    for version in (1, 2):
        assert "shared render cache" in (tmp_path / f"second/scenes/01/code_v{version}.log").read_text()
    for name in (
        "scenes/01/scene.mp4",
        "scenes/02/scene.mp4",
        "scenes/03/scene.mp4",
        "video.mp4",
        "subtitles.vtt",
    ):
        assert (tmp_path / "second" / name).read_bytes() == (tmp_path / "first" / name).read_bytes(), name
    (combined,) = (tmp_path / "_cache/combined").iterdir()  # the second job combined nothing either
    assert {p.name for p in combined.iterdir()} >= {"video.mp4", "thumbnail.jpg", "combined.json"}


@pytest.mark.s3
def test_the_render_cache_is_shared_through_s3(
    fake_llm: FakeLLM, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.create_bucket()
    env = cli_env(**s3_server.env(bucket), WORK_DIR=str(tmp_path / "work"))
    assert run_cli("generate", "Test topic", "--job-id", "one", env=env).returncode == 0
    fake_llm.served.clear()
    result = run_cli("generate", "Test topic", "--job-id", "two", env=env)
    assert result.returncode == 0, result.stderr

    s3 = s3_server.client()
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="videojobs/_cache/renders/")["Contents"]
    ]
    assert len([k for k in keys if k.endswith(".mp4")]) == 3
    metadata = json.loads(s3.get_object(Bucket=bucket, Key="videojobs/two/metadata.json")["Body"].read())
    assert metadata["render_cache_hits"] == 3
    first = json.loads(s3.get_object(Bucket=bucket, Key="videojobs/one/metadata.json")["Body"].read())
    assert first["render_cache_hits"] == 0
