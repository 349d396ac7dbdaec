"""Request and response bodies of the REST API (snake_case JSON), and the stored job they describe."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from videojobs.contract import (
    GenerationRequest,
    JobError,
    JobStatus,
    ModelChoice,
    Phase,
    Quality,
    SceneCounts,
    Stage,
    Topic,
    Usage,
)

API_PREFIX = "/v1"
"""Every job route lives under this versioned prefix; health and metrics do not."""

JOB_ID_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
"""Job ids are DNS-1123 labels (storage prefixes and Kubernetes names alike)."""


class Priority(StrEnum):
    """Queue order among a deployment's waiting jobs."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """Higher runs first."""
        return list(Priority).index(self)


class OutputFormat(StrEnum):
    """Container of the finished video."""

    MP4 = "mp4"


class WebhookEvent(StrEnum):
    """What a job's webhook is called for: its end (always useful) and, optionally, each stage."""

    COMPLETED = "completed"
    STAGE = "stage"


Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
WebhookUrl = Annotated[
    str,
    StringConstraints(
        max_length=2000, pattern=r"^https?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[\x21-\x7e]*)?$"
    ),
]
"""An http(s) URL with an ASCII host name or address, kept exactly as given."""


class JobCreateRequest(BaseModel):
    """What to generate (the seed's contract) plus a webhook and a budget; unknown fields are refused.

    Booleans and numbers are strict: JSON types must match the schema (no 0 for false, no "5" for 5).
    """

    model_config = ConfigDict(extra="forbid")

    topic: Topic
    description: str = Field(
        default="",
        max_length=5000,
        validation_alias=AliasChoices("description", "context"),
        description="Extra context for the planner (`context` is accepted too).",
    )
    model: str | None = Field(
        default=None, min_length=1, max_length=200, description="litellm model string for every role."
    )
    quality: Quality | None = Field(default=None, description="Render preset; the deployment's if unset.")
    priority: Priority = Priority.NORMAL
    enable_subtitles: bool = Field(default=True, strict=True)
    enable_thumbnails: bool = Field(default=True, strict=True)
    output_format: OutputFormat = OutputFormat.MP4
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    webhook_url: WebhookUrl | None = Field(
        default=None, description="Called (signed, Standard Webhooks) when the job ends."
    )
    webhook_events: list[WebhookEvent] = Field(
        default_factory=lambda: [WebhookEvent.COMPLETED], max_length=len(WebhookEvent)
    )
    max_cost_usd: float | None = Field(
        default=None, gt=0, le=10_000, strict=True, description="Stop before spending more on LLM calls."
    )

    def generation_request(self) -> GenerationRequest:
        """The runner's request for this job."""
        return GenerationRequest(
            topic=self.topic,
            description=self.description,
            models=ModelChoice(planner=self.model, scene=self.model, helper=self.model),
            quality=self.quality,
            max_cost_usd=self.max_cost_usd,
        )

    def fingerprint(self) -> str:
        """A hash of the validated request: equal requests (defaults filled in) hash alike."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def file_stem(self) -> str:
        """A download file name stem from the topic, e.g. `the-pythagorean-theorem`."""
        return re.sub(r"[^a-z0-9]+", "-", self.topic.lower()).strip("-")[:60].strip("-") or "video"


@dataclass(frozen=True)
class StoredJob:
    """A job as a backend holds it: owner, request, latest status and the id of its latest event."""

    id: str
    owner: str
    created_at: datetime
    request: JobCreateRequest
    status: JobStatus
    event_id: int
    storage_id: str | None = None
    """Where its artifacts are stored when not under its id (a VideoJob's storage_job_id)."""
    webhook_sent: str | None = None
    """The final webhook event recorded as sent (kubernetes backend), never to be sent again."""

    @property
    def storage_key(self) -> str:
        """The storage prefix of the job's artifacts."""
        return self.storage_id or self.id


def _same_name(name: str) -> str:
    return name


_SNAKE_CASE = ConfigDict(alias_generator=_same_name)


class SceneProgress(SceneCounts):
    """Scenes in the outline, rendered and failed."""

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
    usage: UsageReport
    error: FailureReport | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion_time: datetime | None = Field(
        description="When the job is expected to complete; null before it runs and once it has ended."
    )
    duration_seconds: float | None = Field(description="Length of the finished video.")

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
        "usage": UsageReport.model_validate(status.usage.model_dump()),
        "error": FailureReport.model_validate(status.error.model_dump()) if status.error else None,
        "created_at": job.created_at,
        "started_at": status.start_time,
        "completed_at": status.completion_time,
        "estimated_completion_time": status.estimated_completion_time,
        "duration_seconds": status.result.duration_seconds if status.result else None,
    }


class JobLinks(BaseModel):
    """The job's routes (paths on this API)."""

    job: str
    status: str
    events: str
    cancel: str
    video_url: str
    stream: str
    download: str
    thumbnail: str
    subtitles: str
    metadata: str

    @classmethod
    def of(cls, job_id: str) -> JobLinks:
        """The links of one job."""
        base = f"{API_PREFIX}/videos/jobs/{job_id}"
        return cls(
            job=base,
            status=f"{base}/status",
            events=f"{base}/events",
            cancel=f"{base}/cancel",
            video_url=f"{base}/video-url",
            stream=f"{base}/stream",
            download=f"{base}/download",
            thumbnail=f"{base}/thumbnail",
            subtitles=f"{base}/subtitles",
            metadata=f"{base}/metadata",
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
            "request": job.request,
            "urls": JobLinks.of(job.id),
        }
        return cls.model_validate(fields)


class JobList(BaseModel):
    """A page of jobs, newest first."""

    data: list[JobResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")
    has_more: bool


class VideoUrl(BaseModel):
    """Where the finished video can be fetched without an API key, until `expires_at`."""

    url: str
    expires_at: datetime
    kind: Literal["api", "presigned"] = Field(
        description="`api`: a signed URL of this API (local storage); `presigned`: an S3 URL."
    )


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok"] = "ok"
