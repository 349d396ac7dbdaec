"""A job's stored artifacts, which double as its checkpoint: what exists in storage is done."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field, ValidationError

from videojobs.contract import (
    GenerationRequest,
    JobStatus,
    ModelChoice,
    Quality,
    Revision,
    TTSBackend,
    VoiceSpec,
    utcnow,
)
from videojobs.errors import StorageError
from videojobs.storage import Storage

M = TypeVar("M", bound=BaseModel)

JOB_FILE = "job.json"
STATUS_FILE = "status.json"
OUTLINE_FILE = "outline.json"
VIDEO_FILE = "video.mp4"
THUMBNAIL_FILE = "thumbnail.jpg"
METADATA_FILE = "metadata.json"
SUBTITLES_SRT_FILE = "subtitles.srt"
SUBTITLES_VTT_FILE = "subtitles.vtt"
USAGE_FILE = "usage.json"

_JOB_ID = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CODE_VERSION = re.compile(r"/code_v(\d+)\.py$")


class ResolvedModels(BaseModel):
    """The litellm model strings a job runs with, fixed when the job is created."""

    planner: str
    scene: str
    helper: str


class JobRecord(BaseModel):
    """What a job was asked to do, with defaults resolved once so a resume behaves the same."""

    id: str
    request: GenerationRequest
    models: ResolvedModels
    quality: Quality
    voice: VoiceSpec = Field(default_factory=lambda: VoiceSpec(backend=TTSBackend.NONE.value))
    """The narration voice, backend resolved (jobs stored before narration existed speak none)."""
    created_at: datetime = Field(default_factory=utcnow)

    def revision_request(self, revision: Revision) -> GenerationRequest:
        """The request of a revise of this job: its own, with the models, quality and voice it ran with."""
        return self.request.model_copy(
            update={
                "models": ModelChoice(**self.models.model_dump()),
                "quality": self.quality,
                "voice": self.voice,
                "revision": revision,
            }
        )


def new_job_id(topic: str) -> str:
    """A DNS-1123 name from the topic plus a random suffix, e.g. `pythagorean-theorem-3f9a1c`."""
    slug = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")[:40].strip("-") or "video"
    return f"{slug}-{secrets.token_hex(3)}"


def validate_job_id(job_id: str) -> str:
    """Accept only DNS-1123 labels, so ids are safe as storage prefixes and Kubernetes names."""
    if not _JOB_ID.match(job_id):
        raise StorageError(f"invalid job id {job_id!r}: use lowercase letters, digits and '-' (max 63)")
    return job_id


def code_versions_among(keys: Iterable[str]) -> list[int]:
    """The code version numbers that keys of one scene's folder name, ascending."""
    return sorted(int(m.group(1)) for key in keys if (m := _CODE_VERSION.search(key)))


@dataclass(frozen=True)
class SceneFiles:
    """The names of scene `index`'s artifacts (1-based), relative to the job: one accessor per file."""

    index: int

    @property
    def folder(self) -> str:
        """The scene's folder."""
        return f"scenes/{self.index:02d}"

    @property
    def plan(self) -> str:
        """Its storyboard, technical and narration plans."""
        return f"{self.folder}/plan.json"

    @property
    def narration(self) -> str:
        """Its narration segments and their spoken lengths."""
        return f"{self.folder}/narration.json"

    @property
    def render(self) -> str:
        """The record of its kept render (its presence marks the scene done)."""
        return f"{self.folder}/render.json"

    @property
    def video(self) -> str:
        """Its kept render."""
        return f"{self.folder}/scene.mp4"

    @property
    def thumbnail(self) -> str:
        """A small JPEG poster frame of its kept render (scenes rendered before posters existed have none)."""
        return f"{self.folder}/{THUMBNAIL_FILE}"

    @property
    def timing(self) -> str:
        """Where its narration lies under its blocks."""
        return f"{self.folder}/timing.json"

    @property
    def parent_plan(self) -> str:
        """In a revise, the plan the revised job had for this scene (what the new one changes)."""
        return f"{self.folder}/parent_plan.json"

    @property
    def parent_code(self) -> str:
        """In a revise, the code the revised job kept for this scene."""
        return f"{self.folder}/parent_code.py"

    def code(self, version: int) -> str:
        """Code version `version`."""
        return f"{self.folder}/code_v{version}.py"

    def log(self, version: int) -> str:
        """The render log of code version `version`."""
        return f"{self.folder}/code_v{version}.log"

    def error(self, version: int) -> str:
        """Why code version `version` failed its check or render."""
        return f"{self.folder}/code_v{version}.error.txt"

    def layout(self, version: int) -> str:
        """The layout check of code version `version`'s render."""
        return f"{self.folder}/code_v{version}.layout.json"


class JobArtifacts:
    """Typed access to one job's artifacts under `<job_id>/` in a Storage."""

    def __init__(self, storage: Storage, job_id: str) -> None:
        self.storage = storage
        self.job_id = validate_job_id(job_id)

    def key(self, name: str) -> str:
        """The storage key of an artifact name."""
        return f"{self.job_id}/{name}"

    def location(self, name: str) -> str:
        """Where an artifact can be found (a path or an s3:// URL)."""
        return self.storage.location(self.key(name))

    def folder_location(self) -> str:
        """Where the job's artifacts are, as a whole."""
        return self.storage.location(self.job_id)

    def exists(self, name: str) -> bool:
        """Whether an artifact is stored."""
        return self.storage.exists(self.key(name))

    def save_model(self, name: str, model: BaseModel) -> None:
        """Store a pydantic model as indented JSON."""
        data = model.model_dump_json(indent=2, by_alias=True, exclude_none=True).encode()
        self.storage.put_bytes(self.key(name), data, "application/json")

    def load_model(self, name: str, model_type: type[M]) -> M | None:
        """Load a stored model; None when absent. A corrupt file is an error, not a silent redo."""
        data = self.storage.get_bytes(self.key(name))
        if data is None:
            return None
        try:
            return model_type.model_validate_json(data)
        except ValidationError as error:
            raise StorageError(
                f"{self.location(name)} is not a valid {model_type.__name__}: {error}"
            ) from error

    def save_text(self, name: str, text: str) -> None:
        """Store a text artifact (code, logs)."""
        self.storage.put_bytes(self.key(name), text.encode())

    def load_text(self, name: str) -> str | None:
        """A stored text artifact; None when absent."""
        data = self.storage.get_bytes(self.key(name))
        return None if data is None else data.decode()

    def save_file(self, name: str, path: Path) -> None:
        """Store a local file under an artifact name."""
        self.storage.put_file(self.key(name), path)

    def fetch_file(self, name: str, dest: Path) -> bool:
        """Copy a stored artifact to a local path; False when absent."""
        return self.storage.download(self.key(name), dest)

    def code_versions(self, index: int) -> list[int]:
        """The code version numbers stored for a scene, ascending."""
        return code_versions_among(self.storage.list_keys(self.key(SceneFiles(index).folder) + "/"))

    def load_status(self) -> JobStatus | None:
        """The last status written by a run of this job."""
        return self.load_model(STATUS_FILE, JobStatus)

    def load_job(self) -> JobRecord | None:
        """The job record, if the job exists."""
        return self.load_model(JOB_FILE, JobRecord)
