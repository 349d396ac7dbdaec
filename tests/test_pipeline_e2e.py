"""End to end through the real parts: CLI process → litellm over HTTP → fake LLM → Manim renders → ffmpeg."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from cli_runs import VIDEOJOBS, cli_env, ffprobe, job_folders, parse_srt, read_json, run_cli
from fake_llm import FakeLLM

pytestmark = pytest.mark.render


def test_generate_produces_a_probed_mp4_with_thumbnail_and_metadata(
    fake_llm: FakeLLM, tmp_path: Path
) -> None:
    result = run_cli("generate", "Test topic", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr

    (job,) = job_folders(tmp_path)
    assert str(job / "video.mp4") in result.stderr  # the CLI says where the video is
    probe = ffprobe(job / "video.mp4")
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    audio = next(s for s in probe["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 854, 480)
    assert audio["codec_name"] == "aac"
    duration = float(video["duration"])
    assert abs(float(audio["duration"]) - duration) <= 0.5  # the narration track spans the video
    assert (job / "thumbnail.jpg").read_bytes()[:2] == b"\xff\xd8"
    for poster in [job / f"scenes/{n:02d}/thumbnail.jpg" for n in (1, 2, 3)]:  # each scene's, 320 px wide
        assert poster.read_bytes()[:2] == b"\xff\xd8"
        assert [(s["codec_name"], s["width"]) for s in ffprobe(poster)["streams"]] == [("mjpeg", 320)]
    metadata = read_json(job / "metadata.json")

    # Narration (espeak-ng, the default voice): each scene lasts as long as its speech, within a frame.
    narration = metadata["narration"]
    assert narration["backend"] == "espeak" and len(narration["scenes"]) == 3
    for scene in narration["scenes"]:
        assert scene["video_seconds"] >= scene["speech_seconds"] - 1 / 15
    assert 0 <= narration["max_drift_seconds"] <= 1 / 15
    timing = read_json(job / "scenes/01/timing.json")
    assert timing["track_seconds"] >= timing["video_seconds"] - 1 / 15
    # Scene 1's code starts its second sentence with self.next_section(), as its prompt asked.
    code_prompt = next(r for r in fake_llm.requests if r["task"] == "scene-code-1")["messages"][-1]["content"]
    first, _ = read_json(job / "scenes/01/narration.json")["segments"]
    assert f'1. ({first["seconds"]:.1f} s) "A circle can become a square."' in code_prompt
    assert "self.next_section()" in code_prompt
    assert (
        [b["block_start"] for b in timing["blocks"]]
        == timing["segment_starts"]
        == [0.0, timing["blocks"][1]["block_start"]]
    )
    assert first["seconds"] <= timing["blocks"][0]["block_end"] <= first["seconds"] + 1 / 15 + 0.001
    # Subtitles: one cue per spoken sentence, each inside its scene, the last ending within the video.
    cues = parse_srt((job / "subtitles.srt").read_text())
    assert [text for *_, text in cues][:2] == ["A circle can become a square.", "Watch it change shape."]
    assert cues[1][0] == pytest.approx(timing["blocks"][1]["block_start"], abs=0.002)  # with its block
    assert cues[-1][1] <= duration
    chapters = metadata["scenes"]
    scene_of = [
        next(c for c in chapters if c["start_seconds"] <= start < c["end_seconds"]) for start, *_ in cues
    ]
    assert [c["index"] for c in scene_of] == [1, 1, 2, 3, 3]
    assert cues[2][0] == pytest.approx(chapters[1]["start_seconds"], abs=0.002)  # offsets follow the timeline
    assert chapters[1]["start_seconds"] == pytest.approx(timing["video_seconds"], abs=0.002)
    assert (job / "subtitles.vtt").read_text().count(" --> ") == len(cues)
    assert metadata["width"] == 854 and metadata["fps"] == 15
    assert [s["title"] for s in metadata["scenes"]] == ["Shapes", "Formula", "Summary"]
    assert metadata["usage"]["llm_calls"] == len(fake_llm.requests)

    # The re-ask and fix loops ran: malformed plan re-asked, unsafe code and crashing code fixed.
    calls = Counter(fake_llm.tasks())
    assert calls["outline"] == 1
    assert calls["scene-plan-1-of-3"] == 2
    assert calls["fix-scene-code-2"] == 1 and calls["fix-scene-code-3"] == 1
    assert "safety check" in (job / "scenes/02/code_v1.error.txt").read_text()
    assert "undefined_thing" in (job / "scenes/03/code_v1.error.txt").read_text()
    assert (job / "scenes/03/code_v2.py").exists() and (job / "scenes/03/code_v1.log").exists()

    status = read_json(job / "status.json")
    assert (status["phase"], status["stage"], status["progress"]) == ("Succeeded", "completed", 100)
    assert status["scenes"] == {"total": 3, "rendered": 3, "failed": 0, "ready": "3/3"}


def test_resume_after_kill_repeats_no_stored_work(fake_llm: FakeLLM, tmp_path: Path) -> None:
    env = cli_env(MAX_CONCURRENT_RENDERS="1")
    process = subprocess.Popen(
        [VIDEOJOBS, "generate", "Test topic", "--out", str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob("*/scenes/*/render.json")):
        assert process.poll() is None, "the run ended before any scene rendered"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the runner and its render subprocess
    process.wait()

    (job,) = job_folders(tmp_path)
    assert not (job / "video.mp4").exists()
    rendered_before = {p.parent.name: p.stat().st_mtime_ns for p in job.glob("scenes/*/scene.mp4")}
    spoken_before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("_cache/tts/*.wav")}
    assert spoken_before  # a rendered scene was narrated first
    stored = {p.relative_to(job).as_posix() for p in job.rglob("*") if p.is_file()}
    calls_before = len(fake_llm.requests)

    result = run_cli("resume", str(job), env=env)
    assert result.returncode == 0, result.stderr
    assert (job / "video.mp4").exists()

    new_calls = fake_llm.tasks()[calls_before:]
    if "outline.json" in stored:
        assert "outline" not in new_calls
    for scene in ("01", "02", "03"):
        n = int(scene)
        if f"scenes/{scene}/plan.json" in stored:
            assert f"scene-plan-{n}-of-3" not in new_calls
        if f"scenes/{scene}/code_v1.py" in stored:
            assert f"scene-code-{n}" not in new_calls
        if f"scenes/{scene}/render.json" in stored:
            assert f"fix-scene-code-{n}" not in new_calls
    # Scenes that had rendered were kept, not rendered again; no sentence was spoken twice.
    for scene, mtime in rendered_before.items():
        assert (job / "scenes" / scene / "scene.mp4").stat().st_mtime_ns == mtime
    spoken = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("_cache/tts/*.wav")}
    assert len(spoken) == 5 and spoken.items() >= spoken_before.items()


@pytest.mark.llm_fixture("scene-keeps-failing")
def test_failed_scene_is_retried_alone_on_resume(fake_llm: FakeLLM, tmp_path: Path) -> None:
    env = cli_env(MAX_FIX_ATTEMPTS="1")
    first = run_cli("generate", "Test topic", "--out", str(tmp_path), env=env)
    assert first.returncode == 1
    error_lines = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "rendering" in error_lines[0] and "scene 3" in error_lines[0]
    (job,) = job_folders(tmp_path)
    status = read_json(job / "status.json")
    assert status["phase"] == "Failed"
    assert status["error"]["stage"] == "rendering" and status["error"]["recoverable"] is True
    assert status["scenes"] == {"total": 3, "rendered": 2, "failed": 1, "ready": "2/3"}
    kept = {s: (job / f"scenes/{s}/scene.mp4").stat().st_mtime_ns for s in ("01", "02")}

    fake_llm.replies["fix-scene-code-3"] = [
        (Path(__file__).parent / "fixtures/llm/three-scenes/fix-scene-code-3.1.txt").read_text()
    ]
    calls_before = len(fake_llm.requests)
    second = run_cli("resume", job.name, env=env | {"OUTPUT_DIR": str(tmp_path)})
    assert second.returncode == 0, second.stderr
    assert fake_llm.tasks()[calls_before:] == ["fix-scene-code-3"]
    assert {s: (job / f"scenes/{s}/scene.mp4").stat().st_mtime_ns for s in ("01", "02")} == kept
    assert read_json(job / "status.json")["phase"] == "Succeeded"


def test_demo_renders_the_bundled_example_without_any_llm(tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env().items() if not k.endswith("_API_KEY")}
    result = run_cli("demo", "--quality", "low", "--out", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    (job,) = job_folders(tmp_path)
    metadata = read_json(job / "metadata.json")
    assert metadata["usage"]["llm_calls"] == 0
    assert len(metadata["scenes"]) == 3 and metadata["height"] == 480


@pytest.mark.llm_fixture("hostile-code")
def test_hostile_code_is_never_run_and_the_job_says_why(fake_llm: FakeLLM, tmp_path: Path) -> None:
    result = run_cli("generate", "Test topic", "--out", str(tmp_path), env=cli_env(MAX_FIX_ATTEMPTS="1"))
    assert result.returncode == 1
    (job,) = job_folders(tmp_path)
    status = read_json(job / "status.json")
    assert status["error"]["stage"] == "code_generation" and "scene 1" in status["error"]["message"]
    assert status["scenes"]["failed"] == 1 and status["scenes"]["rendered"] == 2
    for version in (1, 2):
        assert "safety check" in (job / f"scenes/01/code_v{version}.error.txt").read_text()
        assert not (job / f"scenes/01/code_v{version}.log").exists()  # never handed to a render process
    assert "open" in (job / "scenes/01/code_v1.error.txt").read_text()
    assert "__builtins__" in (job / "scenes/01/code_v2.error.txt").read_text()
