"""The routes: jobs, their events and artifacts under /v1; /livez, /readyz and /metrics beside them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import WithJsonSchema

from videojobs.artifacts import JobArtifacts, SceneFiles
from videojobs.contract import GenerationRequest, Phase, Revision, VoiceSpec, unspeakable
from videojobs.storage import guess_content_type
from videojobs_api.auth import CurrentPrincipal, Principal, Signer, VideoPrincipal
from videojobs_api.backends.base import ArtifactKind, Idempotency, JobBackend
from videojobs_api.events import EVENT_STREAM_MEDIA_TYPE, EventBus, event_stream_response, visible_changes
from videojobs_api.models import (
    API_PREFIX,
    JOB_ID_PATTERN,
    Health,
    JobCreateRequest,
    JobList,
    JobResponse,
    JobStatusResponse,
    ReviseRequest,
    SceneList,
    StoredJob,
    VideoUrl,
    fingerprint,
    to_contract,
)
from videojobs_api.problems import (
    ArtifactNotFound,
    IdempotencyKeyInUse,
    InvalidField,
    JobNotFinished,
    problem_responses,
)
from videojobs_api.scenes import StoredScene, scene_list, stored_scenes
from videojobs_api.settings import ApiSettings
from videojobs_api.webhooks import WebhookDispatcher


class InFlightKeys:
    """Idempotency-Keys whose first request is still being answered (a retry meanwhile gets a 409)."""

    def __init__(self) -> None:
        self._held: set[tuple[str, str]] = set()

    @contextlib.contextmanager
    def hold(self, owner: str, key: str | None) -> Iterator[None]:
        """Hold `key` of `owner` for the block; IdempotencyKeyInUse when it is already held."""
        if key is None:
            yield
            return
        token = (owner, key)
        if token in self._held:
            raise IdempotencyKeyInUse()
        self._held.add(token)
        try:
            yield
        finally:
            self._held.discard(token)


@dataclass(frozen=True)
class Services:
    """What the routes use, built once per app by the app factory."""

    settings: ApiSettings
    backend: JobBackend
    webhooks: WebhookDispatcher
    registry: CollectorRegistry
    in_flight: InFlightKeys
    bus: EventBus


async def get_services(request: Request) -> Services:
    """Dependency: the app's services."""
    services = request.app.state.services
    assert isinstance(services, Services)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, max_length=63, description="The job's id.")]
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
"""Visible ASCII, as the IETF draft's keys are."""

# Optional parameters carry the schema of their value: an absent one is left out, never sent as null.
IdempotencyKey = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}),
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Retries with the same key and body return the same job.",
    ),
]
LastEventId = Annotated[
    int | None,
    WithJsonSchema({"type": "integer", "minimum": 0}),
    Header(alias="Last-Event-ID", ge=0, description="Resume after this event id."),
]
Cursor = Annotated[
    str | None,
    WithJsonSchema({"type": "string", "maxLength": 200}),
    Query(max_length=200, description="next_cursor of the previous page."),
]
PhaseFilter = Annotated[
    list[Phase] | None,
    WithJsonSchema({"type": "array", "items": {"type": "string", "enum": [phase.value for phase in Phase]}}),
    Query(description="Only jobs in these phases."),
]


class SubtitleFormat(StrEnum):
    """Subtitle file formats."""

    VTT = "vtt"
    SRT = "srt"


_SUBTITLE_KINDS = {
    SubtitleFormat.VTT: ArtifactKind.SUBTITLES_VTT,
    SubtitleFormat.SRT: ArtifactKind.SUBTITLES_SRT,
}

router = APIRouter(
    prefix=API_PREFIX,
    tags=["videos"],
    responses=problem_responses(HTTPStatus.UNAUTHORIZED, HTTPStatus.UNPROCESSABLE_ENTITY),
)
operations = APIRouter(tags=["operations"])


def _file_responses(
    *kinds: ArtifactKind, ranges: bool = False, any_phase: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The responses of a file route; a 409 unless the file may be read in `any_phase`."""
    binary = {"schema": {"type": "string", "format": "binary"}}
    text = {"text/plain": {"schema": {"type": "string"}}}
    problems = (HTTPStatus.NOT_FOUND,) if any_phase else (HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT)
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "The file.", "content": {kind.media_type: binary for kind in kinds}},
        307: {"description": "Redirect to a presigned URL (S3 storage)."},
        **problem_responses(*problems),
    }
    if ranges:
        responses[206] = {
            "description": "The requested byte range(s) (HTTP Range).",
            "content": {kinds[0].media_type: binary, "multipart/byteranges": binary},
        }
        responses[400] = {"description": "Malformed Range header.", "content": text}
        responses[416] = {"description": "Range not satisfiable.", "content": text}
    return responses


# --- jobs -------------------------------------------------------------------------------------------


_LOCATION = {"Location": {"description": "The new job's URL.", "schema": {"type": "string"}}}


@router.post(
    "/videos/generate",
    status_code=HTTPStatus.ACCEPTED,
    summary="Create a video job",
    responses={
        202: {"headers": _LOCATION},
        **problem_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.NOT_FOUND,
            HTTPStatus.CONFLICT,
            HTTPStatus.TOO_MANY_REQUESTS,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
    },
)
async def generate_video(
    body: JobCreateRequest,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JobResponse:
    """Queue a job; 202 with its Location. An Idempotency-Key replays the job it created before.

    429 over the cap of active jobs, or once the caller's daily budget is spent (Retry-After: the next
    UTC midnight); within a budget, max_cost_usd is lowered to what is left of it.
    """
    job_request = to_contract(body)
    if job_request.revision is not None:
        revision = job_request.revision
        parent = await _revisable(services, principal, revision.parent)  # 404 for a job the caller cannot see
        job_request = job_request.model_copy(
            update={"revision": revision.model_copy(update={"parent": parent.storage_key})}
        )
    return await _create(services, principal, job_request, request, response, idempotency_key)


async def _create(
    services: Services,
    principal: Principal,
    job_request: GenerationRequest,
    request: Request,
    response: Response,
    idempotency_key: str | None,
) -> JobResponse:
    services.webhooks.check_url(job_request.webhook)
    _check_speakable(job_request, services.settings)
    idempotency = Idempotency(idempotency_key, fingerprint(job_request)) if idempotency_key else None
    with services.in_flight.hold(principal.name, idempotency_key):
        created = await services.backend.create(principal, job_request, idempotency)
    job = JobResponse.of(created.job)
    response.headers["Location"] = f"{str(request.base_url).rstrip('/')}{job.urls.job}"
    if created.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return job


def _check_speakable(job_request: GenerationRequest, settings: ApiSettings) -> None:
    """Refuse, as a 422 naming language, a language the deployment's default espeak-ng cannot speak."""
    backend = job_request.voice.backend or settings.runner.tts_backend
    try:
        unspeakable(job_request.language, VoiceSpec(backend=backend))
    except ValueError as error:
        raise InvalidField("language", "body", str(error)) from error


@router.get("/videos/jobs", summary="List jobs")
async def list_jobs(
    principal: CurrentPrincipal,
    services: ServicesDep,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    status: PhaseFilter = None,
) -> JobList:
    """The caller's jobs (every job for an admin), newest first."""
    page = await services.backend.list_jobs(principal, cursor=cursor, limit=limit, phases=status or ())
    return JobList(
        data=[JobResponse.of(job) for job in page.jobs],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )


@router.get("/videos/jobs/{job_id}", summary="Get a job", responses=problem_responses(HTTPStatus.NOT_FOUND))
async def get_job(job_id: JobId, principal: CurrentPrincipal, services: ServicesDep) -> JobResponse:
    """The whole job: status, request, owner and links."""
    return JobResponse.of(await services.backend.get(principal, job_id))


@router.get(
    "/videos/jobs/{job_id}/status",
    summary="Get a job's status",
    responses=problem_responses(HTTPStatus.NOT_FOUND),
)
async def get_job_status(
    job_id: JobId, principal: CurrentPrincipal, services: ServicesDep
) -> JobStatusResponse:
    """Phase, stage, progress, message, scenes, usage and error."""
    return JobStatusResponse.of(await services.backend.get(principal, job_id))


@router.post(
    "/videos/jobs/{job_id}/cancel",
    summary="Cancel a job",
    responses=problem_responses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
)
async def cancel_job(job_id: JobId, principal: CurrentPrincipal, services: ServicesDep) -> JobResponse:
    """Stop a queued or running job (phase Cancelled); 409 when it has already ended."""
    return JobResponse.of(await services.backend.cancel(principal, job_id))


@router.post(
    "/videos/jobs/{job_id}/retry",
    status_code=HTTPStatus.ACCEPTED,
    summary="Retry a failed or cancelled job",
    responses=problem_responses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.TOO_MANY_REQUESTS),
)
async def retry_job(job_id: JobId, principal: CurrentPrincipal, services: ServicesDep) -> JobResponse:
    """Run a Failed or Cancelled job again from its stored work: nothing stored is generated twice.

    409 in any other phase; 429 as for a create (the job's max_cost_usd is lowered to its cost so far
    and what is left of a daily budget). On Kubernetes this raises the VideoJob's spec.attempt, as
    kubectl users may.
    """
    return JobResponse.of(await services.backend.retry(principal, job_id))


@router.post(
    "/videos/jobs/{job_id}/revise",
    status_code=HTTPStatus.ACCEPTED,
    summary="Revise a finished job",
    responses={
        202: {"headers": _LOCATION},
        **problem_responses(
            HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.TOO_MANY_REQUESTS
        ),
    },
)
async def revise_job(
    job_id: JobId,
    body: ReviseRequest,
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JobResponse:
    """A new job that keeps the finished job's outline and every scene not named (no LLM calls or renders
    for them) and makes the named scenes (none named: every scene) again with the instructions; 429 as
    for a create."""
    parent = await _revisable(services, principal, job_id)
    revision = Revision(parent=parent.storage_key, **body.model_dump())
    record = await asyncio.to_thread(
        JobArtifacts(services.backend.artifacts.storage, parent.storage_key).load_job
    )
    job_request = (
        record.revision_request(revision)
        if record is not None
        else parent.request.model_copy(update={"revision": revision})
    )
    return await _create(services, principal, job_request, request, response, idempotency_key)


async def _revisable(services: Services, principal: Principal, job_id: str) -> StoredJob:
    """The job a revise starts from: one the principal may see (else 404) that Succeeded (else 409)."""
    parent = await services.backend.get(principal, job_id)
    if parent.status.phase is not Phase.SUCCEEDED:
        raise JobNotFinished(parent)
    return parent


@router.delete(
    "/videos/jobs/{job_id}",
    status_code=HTTPStatus.NO_CONTENT,
    response_class=Response,
    summary="Delete a job",
    responses=problem_responses(HTTPStatus.NOT_FOUND),
)
async def delete_job(job_id: JobId, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Stop the job if it runs, then delete it and its stored artifacts."""
    await services.backend.delete(principal, job_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get(
    "/videos/jobs/{job_id}/events",
    response_class=StreamingResponse,
    summary="Follow a job (Server-Sent Events)",
    responses={
        200: {
            "description": "One `status` event per change (data: JobStatusResponse, id: the event id); "
            "ends after the terminal one. Comments (`: ping`) keep the connection alive.",
            "content": {EVENT_STREAM_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **problem_responses(HTTPStatus.NOT_FOUND),
    },
)
async def job_events(
    job_id: JobId, principal: CurrentPrincipal, services: ServicesDep, last_event_id: LastEventId = None
) -> StreamingResponse:
    """Status events: the latest (or those after Last-Event-ID), then each change until the job ends."""
    events = await services.backend.events(principal, job_id, last_event_id)
    return event_stream_response(events, services.settings.sse_ping_seconds)


@router.get(
    "/videos/events",
    response_class=StreamingResponse,
    summary="Follow every job (Server-Sent Events)",
    responses={
        200: {
            "description": "One `status` event (data: JobStatusResponse) per change of any job the caller "
            "may see, from now on; never ends by itself. Comments (`: ping`) keep the connection alive.",
            "content": {EVENT_STREAM_MEDIA_TYPE: {"schema": {"type": "string"}}},
        }
    },
)
async def jobs_events(principal: CurrentPrincipal, services: ServicesDep) -> StreamingResponse:
    """Status events of the caller's jobs (every job for an admin), for a live list of jobs."""
    changes = visible_changes(services.bus, lambda job: principal.may_see(job.owner))
    return event_stream_response(changes, services.settings.sse_ping_seconds, end_when_terminal=False)


# --- artifacts --------------------------------------------------------------------------------------


async def _succeeded_job(services: Services, principal: Principal, job_id: str) -> StoredJob:
    job = await services.backend.get(principal, job_id)
    if job.status.phase is not Phase.SUCCEEDED:
        raise JobNotFinished(job)
    return job


def _disposition(disposition: str, filename: str) -> str:
    """A Content-Disposition header (the filename of ASCII letters, digits, dashes and a dot)."""
    return f'{disposition}; filename="{filename}"'


async def _serve(
    services: Services, job: StoredJob, kind: ArtifactKind, suffix: str, disposition: str = "inline"
) -> Response:
    return await _serve_file(services, job, kind.value, f"{job.request.file_stem()}.{suffix}", disposition)


async def _serve_file(
    services: Services, job: StoredJob, name: str, filename: str, disposition: str = "inline"
) -> Response:
    """Artifact `name` of the job served as `filename`: the local file, or a redirect to its presigned URL."""
    artifact = await services.backend.artifacts.locate_file(
        job.storage_key, name, content_disposition=_disposition(disposition, filename)
    )
    if artifact.url is not None:
        return RedirectResponse(artifact.url, status_code=HTTPStatus.TEMPORARY_REDIRECT)
    assert artifact.path is not None
    return FileResponse(
        artifact.path,
        media_type=guess_content_type(name),
        filename=filename,
        content_disposition_type=disposition,
    )


@router.get(
    "/videos/jobs/{job_id}/video-url",
    summary="Get a URL of the video",
    responses=problem_responses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
)
async def get_video_url(
    job_id: JobId, request: Request, principal: CurrentPrincipal, services: ServicesDep, signer: Signer
) -> VideoUrl:
    """URLs to stream and to download the video that need no API key until they expire: presigned (S3) or
    signed by this API (local)."""
    job = await _succeeded_job(services, principal, job_id)
    artifacts = services.backend.artifacts
    stream = await artifacts.locate(job.storage_key, ArtifactKind.VIDEO)
    if stream.url is not None and stream.expires_at is not None:
        attachment = _disposition("attachment", f"{job.request.file_stem()}.mp4")
        download = await artifacts.locate(job.storage_key, ArtifactKind.VIDEO, content_disposition=attachment)
        assert download.url is not None
        return VideoUrl(
            url=stream.url, download_url=download.url, expires_at=stream.expires_at, kind="presigned"
        )
    expires = int(time.time()) + artifacts.presign_seconds
    signed = {"expires": expires, "signature": signer.sign(job.id, expires)}
    return VideoUrl(
        url=str(request.url_for("stream_video", job_id=job.id).include_query_params(**signed)),
        download_url=str(request.url_for("download_video", job_id=job.id).include_query_params(**signed)),
        expires_at=datetime.fromtimestamp(expires, UTC),
        kind="api",
    )


@router.get(
    "/videos/jobs/{job_id}/stream",
    response_class=Response,
    summary="Stream the video (HTTP Range)",
    responses=_file_responses(ArtifactKind.VIDEO, ranges=True),
)
async def stream_video(job_id: JobId, principal: VideoPrincipal, services: ServicesDep) -> Response:
    """The video inline, with Range support; an API key or the signed URL from video-url."""
    job = await _succeeded_job(services, principal, job_id)
    return await _serve(services, job, ArtifactKind.VIDEO, "mp4")


@router.get(
    "/videos/jobs/{job_id}/download",
    response_class=Response,
    summary="Download the video",
    responses=_file_responses(ArtifactKind.VIDEO, ranges=True),
)
async def download_video(job_id: JobId, principal: VideoPrincipal, services: ServicesDep) -> Response:
    """The video as an attachment named after the topic; an API key or the signed URL from video-url."""
    job = await _succeeded_job(services, principal, job_id)
    return await _serve(services, job, ArtifactKind.VIDEO, "mp4", disposition="attachment")


@router.get(
    "/videos/jobs/{job_id}/thumbnail",
    response_class=Response,
    summary="Get the thumbnail",
    responses=_file_responses(ArtifactKind.THUMBNAIL),
)
async def get_thumbnail(job_id: JobId, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """A JPEG frame of the video (404 when the job asked for no thumbnail)."""
    job = await _succeeded_job(services, principal, job_id)
    if not job.request.delivery.thumbnail:
        raise ArtifactNotFound(f"Job {job.id!r} was created with delivery.thumbnail false.")
    return await _serve(services, job, ArtifactKind.THUMBNAIL, "jpg")


@router.get(
    "/videos/jobs/{job_id}/subtitles",
    response_class=Response,
    summary="Get the subtitles",
    responses=_file_responses(ArtifactKind.SUBTITLES_VTT, ArtifactKind.SUBTITLES_SRT),
)
async def get_subtitles(
    job_id: JobId,
    principal: CurrentPrincipal,
    services: ServicesDep,
    subtitle_format: Annotated[SubtitleFormat, Query(alias="format")] = SubtitleFormat.VTT,
) -> Response:
    """WebVTT or SubRip narration subtitles (404 when the job asked for none)."""
    job = await _succeeded_job(services, principal, job_id)
    if not job.request.delivery.subtitles:
        raise ArtifactNotFound(f"Job {job.id!r} was created with delivery.subtitles false.")
    return await _serve(services, job, _SUBTITLE_KINDS[subtitle_format], subtitle_format.value)


@router.get(
    "/videos/jobs/{job_id}/metadata",
    summary="Get the video's metadata",
    responses=problem_responses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT),
)
async def get_metadata(job_id: JobId, principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Duration, size, codecs, scenes with their times, models and LLM usage."""
    job = await _succeeded_job(services, principal, job_id)
    metadata: dict[str, Any] = json.loads(
        await services.backend.artifacts.read(job.storage_key, ArtifactKind.METADATA)
    )
    return metadata


# --- scenes -----------------------------------------------------------------------------------------


SceneIndex = Annotated[int, Path(ge=1, description="The scene's 1-based place in the video.")]


async def _stored_scenes(services: Services, job: StoredJob) -> list[StoredScene]:
    return await asyncio.to_thread(stored_scenes, services.backend.artifacts.storage, job.storage_key)


@router.get(
    "/videos/jobs/{job_id}/scenes",
    summary="List a job's scenes",
    responses=problem_responses(HTTPStatus.NOT_FOUND),
)
async def list_scenes(job_id: JobId, principal: CurrentPrincipal, services: ServicesDep) -> SceneList:
    """The outline's scenes in order, with their states and poster frames, in any phase (none at first)."""
    job = await services.backend.get(principal, job_id)
    return scene_list(job, await _stored_scenes(services, job))


@router.get(
    "/videos/jobs/{job_id}/scenes/{index}/thumbnail",
    response_class=Response,
    summary="Get a scene's thumbnail",
    responses=_file_responses(ArtifactKind.THUMBNAIL, any_phase=True),
)
async def get_scene_thumbnail(
    job_id: JobId, index: SceneIndex, principal: CurrentPrincipal, services: ServicesDep
) -> Response:
    """A small JPEG frame of the scene's render, in any phase (404 until the scene has one)."""
    job = await services.backend.get(principal, job_id)
    scenes = await _stored_scenes(services, job)
    if not any(scene.index == index and scene.thumbnail for scene in scenes):
        raise ArtifactNotFound(f"Scene {index} of job {job.id!r} has no thumbnail (yet).")
    filename = f"{job.request.file_stem()}-scene-{index:02d}.jpg"
    return await _serve_file(services, job, SceneFiles(index).thumbnail, filename)


# --- operations -------------------------------------------------------------------------------------


@operations.get("/livez", summary="Liveness")
async def livez() -> Health:
    """The process serves requests."""
    return Health()


@operations.get("/readyz", summary="Readiness", responses=problem_responses(HTTPStatus.SERVICE_UNAVAILABLE))
async def readyz(services: ServicesDep) -> Health:
    """The job backend answers."""
    await services.backend.ready()
    return Health()


@operations.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={
        200: {
            "description": "Text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(services: ServicesDep) -> Response:
    """Request counts and latencies, webhook deliveries, process metrics; the local backend's tokens and
    cost by model."""
    return Response(generate_latest(services.registry), media_type=CONTENT_TYPE_LATEST)
