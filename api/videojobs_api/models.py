"""Request and response bodies of the REST API (snake_case JSON), and the stored job they describe."""

from __future__ import annotations

import copy
import functools
import hashlib
import operator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model

from videojobs.contract import (
    JOB_NAME_PATTERN,
    ContractModel,
    GenerationRequest,
    JobError,
    JobStatus,
    Phase,
    QueueStatus,
    Revision,
    SceneCounts,
    Stage,
    Usage,
)

API_PREFIX = "/v1"
"""Every job route lives under this versioned prefix; health and metrics do not."""

JOB_ID_PATTERN = JOB_NAME_PATTERN
"""Job ids are DNS-1123 labels (storage prefixes and Kubernetes names alike)."""


def _same_name(name: str) -> str:
    return name


_SNAKE_CASE = ConfigDict(alias_generator=_same_name)


def _snake_case_annotation(annotation: Any) -> Any:
    """`annotation` with every contract model in it replaced by its snake_case twin."""
    if isinstance(annotation, type) and issubclass(annotation, ContractModel):
        return snake_case(annotation)
    arguments = get_args(annotation)
    if not arguments:
        return annotation
    twins = tuple(_snake_case_annotation(argument) for argument in arguments)
    if twins == arguments:
        return annotation
    origin = get_origin(annotation)
    if origin is Annotated:
        return Annotated[(twins[0], *annotation.__metadata__)]
    if origin in (UnionType, Union):
        return functools.reduce(operator.or_, twins)
    return origin[twins]


@functools.cache
def snake_case(model: type[ContractModel]) -> type[ContractModel]:
    """The REST twin of a contract model: the same fields, validation and descriptions, snake_case keys."""
    namespace: dict[str, Any] = {"__doc__": model.__doc__, "__module__": __name__}
    namespace["model_config"] = _SNAKE_CASE
    annotations: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        twin = _snake_case_annotation(info.annotation)
        if twin is not info.annotation:
            annotations[name] = Annotated[(twin, *info.metadata)] if info.metadata else twin
            namespace[name] = copy.copy(info)
    namespace["__annotations__"] = annotations
    return type(model.__name__, (model,), namespace)


if TYPE_CHECKING:
    JobCreateRequest = GenerationRequest
else:
    JobCreateRequest = snake_case(GenerationRequest)
    """The body of POST /v1/videos/generate: the VideoJob spec's request part in snake_case."""


if TYPE_CHECKING:
    ReviseRequest = BaseModel
else:
    ReviseRequest = create_model(
        "ReviseRequest",
        __config__=ConfigDict(extra="forbid"),
        __doc__="What to change in a finished job: instructions for the named scenes (none: every scene).",
        **{name: (info.annotation, info) for name, info in Revision.model_fields.items() if name != "parent"},
    )
    """The body of POST /v1/videos/jobs/{id}/revise: the contract's Revision without its parent."""


def to_contract(request: GenerationRequest) -> GenerationRequest:
    """The contract model of a REST request (or the request itself when it is one)."""
    return GenerationRequest.model_validate(request.model_dump())


def to_rest(request: GenerationRequest) -> GenerationRequest:
    """The REST (snake_case) view of a contract request."""
    return JobCreateRequest.model_validate(request.model_dump())


def fingerprint(request: GenerationRequest) -> str:
    """A hash of the validated request: equal requests (defaults filled in) hash alike."""
    return hashlib.sha256(request.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class StoredJob:
    """A job as a backend holds it: owner, request, latest status and the id of its latest event."""

    id: str
    owner: str
    created_at: datetime
    request: GenerationRequest
    """The request in contract form (REST views convert it with `to_rest`)."""
    status: JobStatus
    event_id: int
    storage_id: str | None = None
    """Where its artifacts are stored when not under its id (a VideoJob's storage_job_id)."""
    webhook_sent: str | None = None
    """The final webhook event recorded as sent (kubernetes backend), never to be sent again."""
    ttl_seconds: int | None = None
    """How long after it ends the job (and its artifacts) is deleted; None: kept until deleted."""

    @property
    def expires_at(self) -> datetime | None:
        """When the finished job will be deleted; None while it runs or when it is kept."""
        ended = self.status.completion_time
        if ended is None or self.ttl_seconds is None or not self.status.phase.is_terminal:
            return None
        return ended + timedelta(seconds=self.ttl_seconds)

    @property
    def storage_key(self) -> str:
        """The storage prefix of the job's artifacts."""
        return self.storage_id or self.id


class SceneProgress(SceneCounts):
    """Scenes in the outline, rendered and failed."""

    model_config = _SNAKE_CASE


class QueuePlace(QueueStatus):
    """The Kueue LocalQueue a job waits in, and its place there where Kueue reports one."""

    model_config = _SNAKE_CASE


class UsageReport(Usage):
    """LLM and speech calls, tokens, characters and cost so far."""

    model_config = _SNAKE_CASE


class FailureReport(JobError):
    """Why the job failed and what to do about it."""

    model_config = _SNAKE_CASE


class JobStatusResponse(BaseModel):
    """Where a job stands: phase, stage, progress, message, scenes, usage and error."""

    id: str
    phase: Phase
    stage: Stage
    progress: int = Field(ge=0, le=100)
    message: str
    scenes: SceneProgress
    queue: QueuePlace | None = Field(
        description=(
            "While Kueue holds the job (Kubernetes, a queue set; phase Queued): its LocalQueue and its place"
            " there; null otherwise."
        )
    )
    usage: UsageReport
    error: FailureReport | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion_time: datetime | None = Field(
        description="When the job is expected to complete; null before it runs and once it has ended."
    )
    duration_seconds: float | None = Field(description="Length of the finished video.")
    expires_at: datetime | None = Field(
        description="When the finished job and its artifacts will be deleted; null: kept until deleted."
    )

    @classmethod
    def of(cls, job: StoredJob) -> JobStatusResponse:
        """The status view of a stored job."""
        return cls.model_validate(_status_fields(job))


def _status_fields(job: StoredJob) -> dict[str, object]:
    status = job.status
    return {
        "id": job.id,
        "phase": status.phase,
        "stage": status.stage,
        "progress": status.progress,
        "message": status.message,
        "scenes": SceneProgress.model_validate(status.scenes.model_dump()),
        "queue": QueuePlace.model_validate(status.queue.model_dump()) if status.queue else None,
        "usage": UsageReport.model_validate(status.usage.model_dump()),
        "error": FailureReport.model_validate(status.error.model_dump()) if status.error else None,
        "created_at": job.created_at,
        "started_at": status.start_time,
        "completed_at": status.completion_time,
        "estimated_completion_time": status.estimated_completion_time,
        "duration_seconds": status.result.duration_seconds if status.result else None,
        "expires_at": job.expires_at,
    }


class JobLinks(BaseModel):
    """The job's routes (paths on this API)."""

    job: str
    status: str
    events: str
    cancel: str
    retry: str
    revise: str
    video_url: str
    stream: str
    download: str
    thumbnail: str
    subtitles: str
    metadata: str
    scenes: str

    @classmethod
    def of(cls, job_id: str) -> JobLinks:
        """The links of one job."""
        base = f"{API_PREFIX}/videos/jobs/{job_id}"
        return cls(
            job=base,
            status=f"{base}/status",
            events=f"{base}/events",
            cancel=f"{base}/cancel",
            retry=f"{base}/retry",
            revise=f"{base}/revise",
            video_url=f"{base}/video-url",
            stream=f"{base}/stream",
            download=f"{base}/download",
            thumbnail=f"{base}/thumbnail",
            subtitles=f"{base}/subtitles",
            metadata=f"{base}/metadata",
            scenes=f"{base}/scenes",
        )


class JobResponse(JobStatusResponse):
    """A whole job: its status, owner, request and links."""

    owner: str
    request: JobCreateRequest
    urls: JobLinks

    @classmethod
    def of(cls, job: StoredJob) -> JobResponse:
        """The full view of a stored job."""
        fields = _status_fields(job) | {
            "owner": job.owner,
            "request": to_rest(job.request),
            "urls": JobLinks.of(job.id),
        }
        return cls.model_validate(fields)


class JobList(BaseModel):
    """A page of jobs, newest first."""

    data: list[JobResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")
    has_more: bool


class SceneState(StrEnum):
    """How far a scene of the outline got, as the job's storage tells."""

    PLANNED = "planned"
    RENDERING = "rendering"
    RENDERED = "rendered"
    FAILED = "failed"


class SceneResponse(BaseModel):
    """One scene of the job's outline: its title, how far it got, and its poster frame once rendered."""

    index: int = Field(ge=1, description="Its 1-based place in the video.")
    title: str
    state: SceneState = Field(
        description="`planned`: no code yet (or the job stopped before rendering it); `rendering`: the job "
        "runs and the scene has code (it is being rendered or fixed); `rendered`: its render is kept; "
        "`failed`: the job is not running and the scene's last code version failed its check or render."
    )
    code_versions: int = Field(ge=0, description="Code versions written for it (first try and fixes).")
    thumbnail: str | None = Field(
        description="Path of its JPEG poster frame on this API; null until it has one."
    )


class SceneList(BaseModel):
    """A job's scenes in video order; empty before the job has its outline."""

    data: list[SceneResponse]


def scene_thumbnail_path(job_id: str, index: int) -> str:
    """The path of scene `index`'s poster frame on this API."""
    return f"{JobLinks.of(job_id).scenes}/{index}/thumbnail"


class VideoUrl(BaseModel):
    """Where the finished video can be fetched without an API key, until `expires_at`."""

    url: str = Field(description="Streams the video inline (HTTP Range), e.g. as a `<video>` source.")
    download_url: str = Field(description="Downloads the video as an attachment named after the topic.")
    expires_at: datetime
    kind: Literal["api", "presigned"] = Field(
        description="`api`: a signed URL of this API (local storage); `presigned`: an S3 URL."
    )


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok"] = "ok"
