"""The shared render cache on local storage and on a real S3 server: keys, hits, misses, bad entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from s3_server import S3Server
from test_storage import s3_storage

from videojobs.contract import Quality
from videojobs.storage import LocalStorage, Storage
from videojobs_runner.combine import Chapter, CombinedVideo, MediaInfo, SceneClip
from videojobs_runner.layout import LayoutViolation, ViolationKind
from videojobs_runner.render_cache import (
    CACHE_PREFIX,
    CachedRender,
    CombinedCache,
    RenderCache,
    combine_key,
    render_key,
)

CODE = "from manim import *\n\nclass Scene1(Scene):\n    def construct(self):\n        self.wait(0.1)\n"
RECORD = CachedRender(
    scene_class="Scene1",
    duration_seconds=0.1,
    layout_violations=[
        LayoutViolation(
            kind=ViolationKind.OFF_FRAME,
            objects=["Dot() at (7.00, 0.00)"],
            animation=1,
            last_animation=1,
            time_seconds=0.1,
            distance=0.3,
            detail="its right edge is at x=7.08, the safe area ends at x=6.81",
        )
    ],
)


def test_the_key_changes_with_each_input_and_only_with_them() -> None:
    key = render_key(CODE, Quality.LOW)
    assert len(key) == 64 and key == render_key(CODE, Quality.LOW)
    others = {
        render_key(CODE + "\n", Quality.LOW),
        render_key(CODE, Quality.MEDIUM),
        render_key(CODE, Quality.LOW, audio_digest="sha256:abc"),
        render_key(CODE, Quality.LOW, layout_margin=0.5),
    }
    assert key not in others and len(others) == 4


def check_round_trip(storage: Storage, tmp_path: Path) -> None:
    """Store, hit, miss, and ignore an unreadable entry."""
    cache = RenderCache(storage)
    video = tmp_path / "scene.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 fake video bytes")
    key = render_key(CODE, Quality.LOW)
    assert cache.fetch(key, tmp_path / "miss.mp4") is None
    cache.store(key, video, RECORD)
    assert storage.list_keys(CACHE_PREFIX) == [f"{CACHE_PREFIX}{key}.json", f"{CACHE_PREFIX}{key}.mp4"]
    assert cache.fetch(key, tmp_path / "hit.mp4") == RECORD
    assert (tmp_path / "hit.mp4").read_bytes() == video.read_bytes()
    other = render_key(CODE, Quality.HIGH)
    storage.put_bytes(f"{CACHE_PREFIX}{other}.json", b'{"written by": "another version"}')
    assert cache.fetch(other, tmp_path / "old.mp4") is None
    storage.put_bytes(f"{CACHE_PREFIX}{other}.json", RECORD.model_dump_json().encode())
    assert cache.fetch(other, tmp_path / "half.mp4") is None  # a record without its video is a miss


def test_local_round_trip(tmp_path: Path) -> None:
    check_round_trip(LocalStorage(tmp_path / "out"), tmp_path)
    assert (tmp_path / "out" / "_cache" / "renders").is_dir()


@pytest.mark.s3
def test_s3_round_trip(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.create_bucket()
    check_round_trip(s3_storage(s3_server, bucket), tmp_path)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 3 and all(key.startswith("vj/_cache/renders/") for key in keys)


def test_combined_videos_are_keyed_by_clip_content_and_round_trip(tmp_path: Path) -> None:
    clip_file = tmp_path / "clip.mp4"
    clip_file.write_bytes(b"one")
    clips = [SceneClip(video=clip_file, title="Shapes", narration="A circle.")]
    key = combine_key(clips, use_gpu=False)
    assert key != combine_key([SceneClip(video=clip_file, title="Shapes", narration="")], use_gpu=False)
    assert key != combine_key(clips, use_gpu=True)
    clip_file.write_bytes(b"two")  # same path, other content
    assert key != combine_key(clips, use_gpu=False)

    made = tmp_path / "made"
    made.mkdir()
    files = {name: made / name for name in ("video.mp4", "thumbnail.jpg", "subtitles.srt", "subtitles.vtt")}
    for name, path in files.items():
        path.write_text(f"content of {name}")
    info = MediaInfo(3.0, 854, 480, 15.0, "h264", "aac", 3.0, 1234)
    combined = CombinedVideo(
        files["video.mp4"],
        files["thumbnail.jpg"],
        files["subtitles.srt"],
        files["subtitles.vtt"],
        info,
        "libx264",
        [Chapter("Shapes", 0.0, 3.0)],
    )
    cache = CombinedCache(LocalStorage(tmp_path / "out"))
    assert cache.fetch(key, tmp_path / "got") is None
    cache.store(key, combined)
    fetched = cache.fetch(key, tmp_path / "got")
    assert fetched is not None
    assert (fetched.info, fetched.encoder, fetched.chapters) == (info, "libx264", combined.chapters)
    assert fetched.video == tmp_path / "got" / "video.mp4"
    assert fetched.subtitles_vtt.read_text() == "content of subtitles.vtt"
