"""Tests for the combining stage, on small real clips made with ffmpeg's lavfi sources (no Manim), and of
its frame extraction as the scenes use it for their poster frames."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import av
import pytest
from cli_runs import parse_srt

from videojobs.artifacts import JobArtifacts
from videojobs.errors import CombiningError
from videojobs.languages import LATIN_CUE_CHARS
from videojobs.settings import Settings
from videojobs.storage import LocalStorage
from videojobs_runner import combine
from videojobs_runner.combine import (
    CombinedVideo,
    Cue,
    MediaInfo,
    SceneClip,
    build_cues,
    combine_scenes,
    probe,
    split_sentences,
    to_srt,
    to_vtt,
)
from videojobs_runner.render_cache import CachedRender
from videojobs_runner.scenes import SceneWork, _Rendered

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="needs ffmpeg and ffprobe"
)

NARRATION_1 = "Welcome to the video. Today we look at circles! Ready?"
NARRATION_2 = "A circle is the set of points at one distance from a centre."
NARRATION_3 = "That is all. Thanks for watching."


def ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


def make_clip(path: Path, source: str, seconds: float, *, tone: bool) -> Path:
    args = ["-f", "lavfi", "-i", f"{source}:d={seconds}"]
    if tone:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
        args += ["-c:a", "aac", "-shortest"]
    ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))
    return path


def mp4_boxes(path: Path) -> list[str]:
    """Top-level MP4 box types, parsed independently of the module under test."""
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, offset)
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        elif size == 0:
            size = len(data) - offset
        boxes.append(kind.decode("latin-1"))
        assert size >= 8
        offset += size
    return boxes


@dataclass
class Combined:
    result: CombinedVideo
    clips: list[SceneClip]
    clip_durations: list[float]
    elapsed: float


@pytest.fixture(scope="module")
def combined(tmp_path_factory: pytest.TempPathFactory) -> Combined:
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("needs ffmpeg and ffprobe")
    src = tmp_path_factory.mktemp("clips")
    # Scene 1: picture + its own 48 kHz AAC tone. Scene 2: no audio stream, narration WAV that is
    # longer than the picture (must be cut). Scene 3: different size and frame rate, no audio at all.
    one = make_clip(src / "one.mp4", "testsrc2=s=854x480:r=15", 2.0, tone=True)
    two = make_clip(src / "two.mp4", "color=c=blue:s=854x480:r=15", 1.5, tone=False)
    three = make_clip(src / "three.mp4", "testsrc2=s=640x360:r=30", 1.0, tone=False)
    speech = src / "speech.wav"
    if shutil.which("espeak-ng") is not None:
        subprocess.run(["espeak-ng", "-w", str(speech), NARRATION_2], check=True, capture_output=True)
    else:
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:duration=3", str(speech))
    clips = [
        SceneClip(video=one, title="Intro", narration=NARRATION_1),
        SceneClip(video=two, title="Definition", narration=NARRATION_2, audio=speech),
        SceneClip(video=three, title="Outro", narration=NARRATION_3),
    ]
    durations = [asyncio.run(probe(c.video)).scene_duration for c in clips]
    started = time.perf_counter()
    result = asyncio.run(combine_scenes(clips, tmp_path_factory.mktemp("out"), use_gpu=False))
    return Combined(result, clips, durations, time.perf_counter() - started)


# --- the combined video -------------------------------------------------------------------------


def test_outputs_are_in_out_dir(combined: Combined) -> None:
    r = combined.result
    assert r.video.name == "video.mp4"
    assert r.thumbnail.name == "thumbnail.jpg"
    assert r.subtitles_srt.name == "subtitles.srt"
    assert r.subtitles_vtt.name == "subtitles.vtt"
    assert len({p.parent for p in (r.video, r.thumbnail, r.subtitles_srt, r.subtitles_vtt)}) == 1
    assert not list(r.video.parent.glob("*.partial.mp4"))
    assert r.encoder == "libx264"
    print(f"combined 3 clips in {combined.elapsed:.2f}s")


def test_video_is_h264_aac_at_first_clip_size(combined: Combined) -> None:
    info = combined.result.info
    assert info.video_codec == "h264"
    assert info.audio_codec == "aac"
    assert (info.width, info.height) == (854, 480)
    assert info.fps == pytest.approx(15, abs=0.01)
    assert info.size_bytes == combined.result.video.stat().st_size
    assert asyncio.run(probe(combined.result.video)) == info


def test_duration_is_sum_of_clips_and_audio_matches(combined: Combined) -> None:
    info = combined.result.info
    assert info.duration_seconds == pytest.approx(sum(combined.clip_durations), abs=0.2)
    assert info.audio_duration_seconds is not None
    assert info.audio_duration_seconds == pytest.approx(info.duration_seconds, abs=0.5)


def test_decodes_with_pyav(combined: Combined) -> None:
    with av.open(str(combined.result.video)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert video.codec_context.name == "h264"
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == 44100
        assert audio.codec_context.channels == 2
        frames = sum(1 for _ in container.decode(video=0))
    # 2 s + 1.5 s + 1 s at 15 fps.
    assert frames == pytest.approx(15 * 4.5, abs=3)


def test_audio_follows_each_scene(combined: Combined) -> None:
    """Tone in scene 1, speech in scene 2, silence in scene 3 — at the right places in the timeline."""
    chapters = combined.result.chapters
    loudness: list[list[float]] = [[] for _ in chapters]
    with av.open(str(combined.result.video)) as container:
        for frame in container.decode(audio=0):
            assert frame.time is not None
            samples = frame.to_ndarray()
            for n, chapter in enumerate(chapters):
                if chapter.start_seconds + 0.1 <= frame.time < chapter.end_seconds - 0.1:
                    loudness[n].append(float(abs(samples).max()))
    assert all(loudness), "every scene should have audio frames"
    assert max(loudness[0]) > 0.05
    assert max(loudness[1]) > 0.05
    assert max(loudness[2]) < 1e-3


def test_pictures_follow_the_chapters(combined: Combined) -> None:
    """The frames inside scene 2's chapter are its solid blue; those just outside are not."""
    chapters = combined.result.chapters
    blue = chapters[1]
    seen: dict[str, int] = {"inside": 0, "outside": 0}
    with av.open(str(combined.result.video)) as container:
        for frame in container.decode(video=0):
            assert frame.time is not None
            rgb = frame.to_ndarray(format="rgb24")
            is_blue = rgb[..., 2].mean() > 200 and rgb[..., 0].mean() < 40 and rgb[..., 1].mean() < 40
            if blue.start_seconds + 0.01 <= frame.time < blue.end_seconds - 0.01:
                assert is_blue, f"frame at {frame.time:.3f}s should be scene 2"
                seen["inside"] += 1
            elif frame.time < blue.start_seconds - 0.1 or frame.time > blue.end_seconds + 0.1:
                assert not is_blue, f"frame at {frame.time:.3f}s should not be scene 2"
                seen["outside"] += 1
    assert seen["inside"] >= 20
    assert seen["outside"] >= 40


def test_moov_precedes_mdat(combined: Combined) -> None:
    boxes = mp4_boxes(combined.result.video)
    assert boxes.index("moov") < boxes.index("mdat")
    assert combine.top_level_boxes(combined.result.video) == boxes
    assert combine.moov_before_mdat(combined.result.video)


def test_thumbnail_is_a_jpeg_of_the_video_size(combined: Combined) -> None:
    thumb = combined.result.thumbnail
    assert thumb.read_bytes()[:3] == b"\xff\xd8\xff"
    with av.open(str(thumb)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (854, 480)


def test_extract_frame_scales_to_a_width(combined: Combined, tmp_path: Path) -> None:
    video = combined.clips[0].video
    poster = asyncio.run(combine.extract_frame(video, 1.0, tmp_path / "poster.jpg", width=320))
    with av.open(str(poster)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (320, 180)  # 854x480 scaled, the height kept even


@needs_ffmpeg
def test_a_scene_whose_poster_frame_fails_is_kept_without_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = LocalStorage(tmp_path / "out")
    ctx = SimpleNamespace(
        settings=Settings(output_dir=tmp_path / "out"),
        artifacts=JobArtifacts(storage, "job-1"),
        scratch=tmp_path / "work",
    )
    broken = tmp_path / "scene.mp4"
    broken.write_bytes(b"not a video")
    rendered = _Rendered(1, "", broken, CachedRender(scene_class="S", duration_seconds=2.0), from_cache=False)
    with caplog.at_level(logging.WARNING, logger="videojobs_runner.scenes"):
        asyncio.run(SceneWork(ctx)._store_thumbnail(1, rendered))  # no error: the scene is still done
    assert storage.list_keys("") == []
    assert "scene 1 has no thumbnail: combining: ffmpeg failed to extract a frame" in caplog.text


def test_chapters_line_up(combined: Combined) -> None:
    chapters = combined.result.chapters
    assert [c.title for c in chapters] == ["Intro", "Definition", "Outro"]
    assert chapters[0].start_seconds == 0
    position = 0.0
    for chapter, duration in zip(chapters, combined.clip_durations, strict=True):
        assert chapter.start_seconds == pytest.approx(position, abs=0.001)
        position += duration
        assert chapter.end_seconds == pytest.approx(position, abs=0.05)
    for before, after in itertools.pairwise(chapters):
        assert after.start_seconds == pytest.approx(before.end_seconds, abs=1e-6)
    assert chapters[-1].end_seconds <= combined.result.info.duration_seconds
    assert chapters[-1].end_seconds == pytest.approx(combined.result.info.duration_seconds, abs=0.2)


def test_subtitle_files_cover_each_scene(combined: Combined) -> None:
    r = combined.result
    cues = parse_srt(r.subtitles_srt.read_text(encoding="utf-8"))
    assert [text for *_, text in cues] == [
        *split_sentences(NARRATION_1),
        *split_sentences(NARRATION_2),
        *split_sentences(NARRATION_3),
    ]
    assert cues[-1][1] <= r.info.duration_seconds
    first_end = combined.clip_durations[0]
    n_first = len(split_sentences(NARRATION_1))
    assert all(start >= first_end - 0.001 for start, _, _ in cues[n_first:])
    # No cue crosses a scene boundary.
    for start, end, _ in cues:
        assert start < end
        assert any(c.start_seconds - 0.001 <= start and end <= c.end_seconds + 0.001 for c in r.chapters)
    vtt = r.subtitles_vtt.read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT\nLanguage: en\n\n")
    assert vtt.count(" --> ") == len(cues)


def test_probe_of_a_clip_without_audio(combined: Combined) -> None:
    info = asyncio.run(probe(combined.clips[2].video))
    assert (info.width, info.height, info.fps) == (640, 360, 30)
    assert info.audio_codec is None
    assert info.audio_duration_seconds is None
    assert info.duration_seconds == pytest.approx(1.0, abs=0.05)


# --- one clip, GPU request, failures ------------------------------------------------------------


@needs_ffmpeg
def test_single_clip_with_gpu_requested(tmp_path: Path) -> None:
    """One scene, a narration shorter than the picture (padded), odd picture size (made even)."""
    clip = make_clip(tmp_path / "only.mp4", "testsrc2=s=855x481:r=15", 1.0, tone=False)
    speech = tmp_path / "short.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=22050:duration=0.4", "-ac", "1", str(speech))
    scene = SceneClip(clip, "Only", "One sentence.", audio=speech)
    result = asyncio.run(combine_scenes([scene], tmp_path / "out", use_gpu=True))
    assert result.encoder in {"libx264", "h264_nvenc"}
    if not Path("/dev/nvidia0").exists():
        assert result.encoder == "libx264"
    assert result.info.audio_codec == "aac"
    assert result.info.duration_seconds == pytest.approx(1.0, abs=0.2)
    assert result.info.audio_duration_seconds == pytest.approx(1.0, abs=0.1)
    assert (result.info.width, result.info.height) == (854, 480)
    assert [(c.title, c.start_seconds) for c in result.chapters] == [("Only", 0.0)]
    assert parse_srt(result.subtitles_srt.read_text())[0][2] == "One sentence."


def test_nvenc_choice_is_cached_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    async def fake_exec(args: list[str]) -> tuple[int, bytes, bytes]:
        calls.append(args)
        if "-encoders" in args:
            return 0, b" V....D libx264   libx264 H.264\n V....D h264_nvenc   NVIDIA NVENC H.264\n", b""
        return 1, b"", b"Cannot load libcuda.so.1\n"

    monkeypatch.setattr(combine, "_exec", fake_exec)
    monkeypatch.setattr(combine, "_nvenc_usable", {})
    monkeypatch.setattr(combine.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert asyncio.run(combine.choose_encoder(use_gpu=True)) == "libx264"
    assert asyncio.run(combine.choose_encoder(use_gpu=True)) == "libx264"
    assert len(calls) == 2  # one listing, one trial — then cached
    assert asyncio.run(combine.choose_encoder(use_gpu=False)) == "libx264"
    assert len(calls) == 2


def test_nvenc_chosen_when_trial_works(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_exec(args: list[str]) -> tuple[int, bytes, bytes]:
        if "-encoders" in args:
            return 0, b" V....D h264_nvenc   NVIDIA NVENC H.264\n", b""
        assert "h264_nvenc" in args and "-frames:v" in args
        return 0, b"", b""

    monkeypatch.setattr(combine, "_exec", fake_exec)
    monkeypatch.setattr(combine, "_nvenc_usable", {})
    monkeypatch.setattr(combine.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert asyncio.run(combine.choose_encoder(use_gpu=True)) == "h264_nvenc"
    assert asyncio.run(combine.choose_encoder(use_gpu=False)) == "libx264"


def test_nvenc_not_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_exec(args: list[str]) -> tuple[int, bytes, bytes]:
        assert "-encoders" in args, "no trial encode when the encoder is not listed"
        return 0, b" V....D libx264   libx264 H.264\n V....D h264_nvenc_fake   x\n", b""

    monkeypatch.setattr(combine, "_exec", fake_exec)
    monkeypatch.setattr(combine, "_nvenc_usable", {})
    monkeypatch.setattr(combine.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert asyncio.run(combine.choose_encoder(use_gpu=True)) == "libx264"


@needs_ffmpeg
def test_corrupt_clip_gives_ffmpegs_message(tmp_path: Path) -> None:
    good = make_clip(tmp_path / "good.mp4", "color=c=red:s=854x480:r=15", 1.0, tone=False)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 40)
    clips = [SceneClip(good, "Good", ""), SceneClip(bad, "Bad", "")]
    with pytest.raises(CombiningError) as info:
        asyncio.run(combine_scenes(clips, tmp_path / "out", use_gpu=False))
    assert "bad.mp4" in info.value.message
    assert "Invalid data found when processing input" in info.value.message or "moov atom not found" in (
        info.value.message
    )
    assert info.value.to_contract().stage == "combining"


@needs_ffmpeg
def test_corrupt_narration_audio_gives_ffmpegs_message(tmp_path: Path) -> None:
    """A broken file that only ffmpeg itself opens: the message quotes ffmpeg's stderr tail."""
    good = make_clip(tmp_path / "good.mp4", "color=c=red:s=854x480:r=15", 1.0, tone=False)
    audio = tmp_path / "speech.wav"
    audio.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + b"\xff" * 64)
    with pytest.raises(CombiningError) as info:
        asyncio.run(combine_scenes([SceneClip(good, "Good", "", audio)], tmp_path / "out", use_gpu=False))
    message = info.value.message
    assert message.startswith("ffmpeg failed to combine the scenes")
    assert "speech.wav" in message
    assert len(message.splitlines()) <= 1 + combine.STDERR_TAIL_LINES
    assert not (tmp_path / "out" / "video.mp4").exists()
    assert not (tmp_path / "out" / "video.partial.mp4").exists()


@needs_ffmpeg
def test_cancelling_stops_ffmpeg_and_leaves_no_partial_video(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mp4", "testsrc2=s=854x480:r=15", 30.0, tone=False)
    out = tmp_path / "out"

    async def cancel_while_encoding() -> None:
        task = asyncio.create_task(combine_scenes([SceneClip(clip, "Long", "")], out, use_gpu=False))
        while not (out / "video.partial.mp4").exists():
            assert not task.done(), "the encode finished before it could be cancelled"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_encoding())
    assert list(out.iterdir()) == []


def test_missing_clip_file(tmp_path: Path) -> None:
    with pytest.raises(CombiningError, match="does not exist"):
        asyncio.run(combine_scenes([SceneClip(tmp_path / "nope.mp4", "x", "")], tmp_path, use_gpu=False))


def test_no_clips(tmp_path: Path) -> None:
    with pytest.raises(CombiningError, match="no rendered scenes"):
        asyncio.run(combine_scenes([], tmp_path, use_gpu=False))


def test_missing_ffmpeg_says_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(CombiningError) as info:
        asyncio.run(combine_scenes([SceneClip(clip, "x", "")], tmp_path / "out", use_gpu=False))
    assert "install" in info.value.message.lower()
    assert "ffmpeg" in info.value.message
    assert "install" in info.value.suggestion.lower()
    with pytest.raises(CombiningError, match="install"):
        asyncio.run(probe(clip))


# --- pure subtitle functions --------------------------------------------------------------------


def test_split_sentences() -> None:
    expected = ["One.", "Two!", "Three?", "Four… five"]  # ICU: no sentence starts in lower case
    assert split_sentences("  One.  Two!\nThree?  Four…  five ") == expected
    assert split_sentences('He said "stop." Then left.') == ['He said "stop."', "Then left."]
    assert split_sentences("") == []
    assert split_sentences("   \n ") == []
    assert split_sentences("pi is 3.14 exactly.") == ["pi is 3.14 exactly."]


def test_long_sentences_are_chunked() -> None:
    sentence = " ".join(["word"] * 60) + "."
    chunks = split_sentences(sentence)
    assert len(chunks) > 1
    assert " ".join(chunks) == sentence
    assert all(len(c) <= LATIN_CUE_CHARS + 10 for c in chunks)


def test_build_cues_spreads_by_length_within_spans() -> None:
    cues = build_cues([(0.0, 3.0, "Aaaa. Bb."), (3.0, 5.0, ""), (5.0, 7.0, "Only one.")])
    assert [c.text for c in cues] == ["Aaaa.", "Bb.", "Only one."]
    # 5 + 3 characters over 3 s.
    assert cues[0].start_seconds == 0.0
    assert cues[0].end_seconds == pytest.approx(3.0 * 5 / 8)
    assert cues[1].start_seconds == cues[0].end_seconds
    assert cues[1].end_seconds == 3.0
    assert (cues[2].start_seconds, cues[2].end_seconds) == (5.0, 7.0)


def test_build_cues_skips_empty_and_degenerate_spans() -> None:
    assert build_cues([]) == []
    assert build_cues([(1.0, 1.0, "Zero length."), (2.0, 1.0, "Backwards.")]) == []


def test_to_srt_format() -> None:
    cues = [Cue(0.0, 1.5, "Hello."), Cue(1.5, 3661.0015, "Bye <now> & then.")]
    assert to_srt(cues) == (
        "1\n00:00:00,000 --> 00:00:01,500\nHello.\n\n2\n00:00:01,500 --> 01:01:01,001\nBye <now> & then.\n"
    )
    assert to_srt([]) == ""


def test_to_vtt_format() -> None:
    cues = [Cue(0.0, 1.5, "Hello."), Cue(1.5, 62.25, "Bye <now> & then.")]
    assert to_vtt(cues, "de") == (
        "WEBVTT\nLanguage: de\n\n"
        "00:00:00.000 --> 00:00:01.500\nHello.\n\n"
        "00:00:01.500 --> 00:01:02.250\nBye &lt;now&gt; &amp; then.\n"
    )
    assert to_vtt([]) == "WEBVTT\nLanguage: en\n"


def test_sentences_and_cues_without_spaces() -> None:
    chinese = (
        "圆可以变成正方形。看它如何一步一步地改变形状，从四条边到无数条边，最后变成一个完美的圆形。真的吗？"  # noqa: RUF001
    )
    assert combine.sentences(chinese, "zh")[0] == "圆可以变成正方形。"
    cues = split_sentences(chinese, "zh")
    assert len(cues) == 4 and "".join(cues) == chinese and all(len(c) <= 32 for c in cues)
    thai = "วงกลมสามารถกลายเป็นสี่เหลี่ยมได้ ดูว่ามันเปลี่ยนรูปร่างอย่างไร และนี่คือแนวคิดของลิมิตที่สำคัญมาก"
    assert len(split_sentences(thai, "th")) == 3  # cut where Thai lines may break, never inside a word
    assert split_sentences("वृत्त एक वर्ग बन सकता है। देखिए यह कैसे बदलता है।", "hi") == [
        "वृत्त एक वर्ग बन सकता है।",
        "देखिए यह कैसे बदलता है।",
    ]


def test_timestamps_never_round_up_past_the_end() -> None:
    text = to_srt([Cue(0.0, 4.4999, "x")])
    assert "00:00:04,499" in text
    assert re.search(r"00:00:01,500", to_srt([Cue(0.0, 1.5, "x")]))
    # 0.1 * 3 is 0.30000000000000004 and 1.5 - 1.2 is 0.30000000000000004; both are 300 ms.
    assert "00:00:00,300" in to_srt([Cue(0.0, 0.1 * 3, "x")])
    assert "00:00:00,300" in to_srt([Cue(0.0, 0.3, "x")])


def test_media_info_scene_duration() -> None:
    info = MediaInfo(2.1, 854, 480, 15.0, "h264", "aac", 2.1, 100, video_duration_seconds=2.0)
    assert info.scene_duration == 2.0
    assert MediaInfo(2.1, 854, 480, 15.0, "h264", None, None, 100).scene_duration == 2.1
