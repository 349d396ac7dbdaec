"""Shared render cache in the job storage: scene renders and combined videos, keyed by what made them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from videojobs.contract import QUALITY_PRESETS, Quality
from videojobs.storage import Storage
from videojobs_runner.combine import CombinedVideo, SceneClip
from videojobs_runner.layout import LayoutViolation

CACHE_PREFIX = "_cache/renders/"
"""Next to the job folders; '_' can never start a job id (DNS-1123), so no job can collide with it."""
COMBINED_PREFIX = "_cache/combined/"
COMBINED_RECORD = "combined.json"
_COMBINED = TypeAdapter(CombinedVideo)
T = TypeVar("T")
HASH_CHUNK = 1024 * 1024
KEY_VERSION = 1
"""Bumped when what a cached entry holds changes, so old entries are never misread."""


class CachedRender(BaseModel):
    """What a render produced besides its video; stored after the video, so it marks the entry whole."""

    scene_class: str
    duration_seconds: float
    blocks: list[float] = []
    """Measured seconds of each narration block (the render was paced to them)."""
    layout_violations: list[LayoutViolation] = []
    harness_faults: list[str] = []
    """Errors in the harness's own checks during the render (the scene rendered unchecked)."""


def _read_record(storage: Storage, key: str, adapter: TypeAdapter[T]) -> T | None:
    """A cache entry's record; None when absent or written by an incompatible version (then redone)."""
    data = storage.get_bytes(key)
    if data is None:
        return None
    try:
        return adapter.validate_json(data)
    except ValidationError:
        return None


def render_key(
    code: str, quality: Quality, *, audio_digest: str | None = None, layout_margin: float = 0.0
) -> str:
    """The cache key of a scene render: a SHA-256 of its code, picture settings, Manim and narration audio.

    The layout margin is part of the key because a cached entry carries its layout check's result.
    """
    preset = QUALITY_PRESETS[quality]
    material = {
        "key_version": KEY_VERSION,
        "code": code,
        "resolution": [preset.width, preset.height, preset.fps],
        "manim": version("manim"),
        "audio": audio_digest,
        "layout_margin": layout_margin,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


_RENDER = TypeAdapter(CachedRender)


class RenderCache:
    """Scene renders shared by every job in one storage backend (a local folder or an S3 bucket)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def fetch(self, key: str, dest: Path) -> CachedRender | None:
        """Copy a cached render's video to `dest` and return its record; None on a miss."""
        record = _read_record(self.storage, f"{CACHE_PREFIX}{key}.json", _RENDER)
        return (
            record if record is not None and self.storage.download(f"{CACHE_PREFIX}{key}.mp4", dest) else None
        )

    def store(self, key: str, video: Path, record: CachedRender) -> None:
        """Add a render to the cache: the video first, then its record."""
        self.storage.put_file(f"{CACHE_PREFIX}{key}.mp4", video, "video/mp4")
        self.storage.put_bytes(
            f"{CACHE_PREFIX}{key}.json", record.model_dump_json().encode(), "application/json"
        )


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def combine_key(clips: list[SceneClip], *, use_gpu: bool, tag: str = "en") -> str:
    """The cache key of a combined video: every field of every clip (files by content), encoder, language."""

    def material(value: Any) -> Any:
        if isinstance(value, Path):
            return file_digest(value)
        if isinstance(value, list | tuple):
            return [material(item) for item in value]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: material(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return value

    described = [
        {f.name: material(getattr(clip, f.name)) for f in dataclasses.fields(clip)} for clip in clips
    ]
    payload = {
        "key_version": KEY_VERSION,
        "videojobs": version("videojobs"),
        "gpu": use_gpu,
        "language": tag,
        "clips": described,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _file_fields(combined: CombinedVideo) -> dict[str, Path]:
    return {
        f.name: value
        for f in dataclasses.fields(combined)
        if isinstance(value := getattr(combined, f.name), Path)
    }


class CombinedCache:
    """Combined videos (video, thumbnail, subtitles and their description) shared by every job."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def fetch(self, key: str, out_dir: Path) -> CombinedVideo | None:
        """Copy a cached combined video's files into `out_dir`; None on a miss."""
        combined = _read_record(self.storage, f"{COMBINED_PREFIX}{key}/{COMBINED_RECORD}", _COMBINED)
        if combined is None:
            return None
        local: dict[str, Any] = {name: out_dir / path.name for name, path in _file_fields(combined).items()}
        for path in local.values():
            if not self.storage.download(f"{COMBINED_PREFIX}{key}/{path.name}", path):
                return None
        return dataclasses.replace(combined, **local)

    def store(self, key: str, combined: CombinedVideo) -> None:
        """Add a combined video: its files first, then its description."""
        for path in _file_fields(combined).values():
            self.storage.put_file(f"{COMBINED_PREFIX}{key}/{path.name}", path)
        record = _COMBINED.dump_json(combined)
        self.storage.put_bytes(f"{COMBINED_PREFIX}{key}/{COMBINED_RECORD}", record, "application/json")
