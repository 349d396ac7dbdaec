"""Whole jobs in German, Chinese and Arabic through the CLI, the fake LLM, real renders and espeak-ng."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_runs import ffprobe, job_folders, read_json, run_cli
from fake_llm import FakeLLM

from videojobs.languages import LANGUAGES

pytestmark = pytest.mark.render


def vtt_cues(text: str) -> list[str]:
    """The cue texts of a WebVTT file, parsed independently of the code under test."""
    return [block.split("\n", 1)[1] for block in text.strip().split("\n\n")[1:]]


def middle_frame(video: Path, seconds: float) -> np.ndarray:
    """One grey frame of `video` at `seconds`, as an (h, w) array."""
    probe = ffprobe(video)
    stream = next(s for s in probe["streams"] if s["codec_type"] == "video")
    width, height = stream["width"], stream["height"]
    raw = subprocess.run(
        [
            *("ffmpeg", "-loglevel", "error", "-ss", f"{seconds:.3f}", "-i", str(video)),
            *("-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width)


@pytest.mark.parametrize(
    ("tag", "sentences"),
    [
        pytest.param(
            "de",
            ["Ein Kreis ist überall gleich rund.", "Schau genau hin."],
            marks=pytest.mark.llm_fixture("lang-de"),
            id="de",
        ),
        pytest.param("zh", None, marks=pytest.mark.llm_fixture("lang-zh"), id="zh"),
        pytest.param(
            "ar",
            ["الدائرة شكل بسيط جدا.", "انظر إليها جيدا."],
            marks=pytest.mark.llm_fixture("lang-ar"),
            id="ar",
        ),
    ],
)
def test_a_job_in_another_language_is_spoken_subtitled_tagged_and_drawn(
    fake_llm: FakeLLM, tmp_path: Path, tag: str, sentences: list[str] | None
) -> None:
    spoken = LANGUAGES[tag]
    result = run_cli("generate", "Circles", "--language", tag, "--max-scenes", "1", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (job,) = job_folders(tmp_path)
    assert read_json(job / "status.json")["phase"] == "Succeeded"
    assert fake_llm.tasks() == ["outline", "scene-plan-1-of-1", "scene-code-1"]
    assert f"in {spoken.name}" in fake_llm.requests[0]["messages"][-1]["content"]

    # Spoken by espeak-ng in the language's voice, one segment per sentence.
    narration = read_json(job / "scenes/01/narration.json")
    assert (narration["backend"], narration["voice"]) == ("espeak", spoken.espeak_voice)
    summary = read_json(job / "metadata.json")["narration"]
    assert (summary["backend"], summary["voice"]) == ("espeak", spoken.espeak_voice)
    texts = [segment["text"] for segment in narration["segments"]]
    if sentences is not None:
        assert texts == sentences
    else:
        assert len(texts) == 3 and texts[-1] == "我们下次再见。"

    # Subtitles name the language; cues are no longer than the script's cue length, Chinese split too.
    vtt = (job / "subtitles.vtt").read_text()
    assert vtt.startswith(f"WEBVTT\nLanguage: {tag}\n")
    cues = vtt_cues(vtt)
    assert len(cues) > 1 and all(len(cue) <= spoken.cue_chars for cue in cues), cues
    if tag == "zh":
        assert len(cues) == 4  # three sentences, the first over 32 characters in two cues
        assert "".join(cues) == "".join(texts)

    # The MP4's audio and subtitle tracks carry the ISO 639-2 code.
    video = job / "video.mp4"
    probe = ffprobe(video)
    tagged = {s["codec_type"]: s.get("tags", {}).get("language") for s in probe["streams"]}
    assert tagged["audio"] == tagged["subtitle"] == spoken.iso639_2

    # Halfway through, the words are drawn in the middle of the frame (no tofu-free blank, no empty RTL).
    frame = middle_frame(video, float(probe["format"]["duration"]) / 2)
    height, width = frame.shape
    middle = frame[height // 3 : 2 * height // 3, width // 6 : 5 * width // 6]
    assert (middle > 128).mean() > 0.01
    assert (frame[: height // 5] > 128).mean() < 0.001  # and nothing stray at the top
