"""RFC 9457 problem+json for every error: HTTP errors, validation errors naming the field, domain errors."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from videojobs_api.models import JobStatusResponse, StoredJob

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:videojobs:problem:"
_SCHEMA_REF = "#/components/schemas/"

log = logging.getLogger(__name__)


class FieldIssue(BaseModel):
    """One invalid input: where it is and what is wrong with it."""

    field: str = Field(description="The field, query parameter, path parameter or header at fault.")
    location: str = Field(description="body, query, path or header.")
    message: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document, with this API's extensions `errors` and `job`."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldIssue] | None = Field(default=None, description="Every invalid input (422).")
    job: JobStatusResponse | None = Field(default=None, description="The job's current status (409).")
    resets_at: datetime | None = Field(
        default=None, description="When the principal's daily budget starts afresh (429, budget)."
    )


class ProblemResponse(JSONResponse):
    """A JSON response typed application/problem+json."""

    media_type = PROBLEM_MEDIA_TYPE


class ApiProblem(Exception):
    """A domain error the API answers with a problem document; subclasses fix status, type and title."""

    status: ClassVar[HTTPStatus] = HTTPStatus.BAD_REQUEST
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        job: StoredJob | None = None,
        errors: Sequence[FieldIssue] | None = None,
        resets_at: datetime | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})
        self.job = job
        self.errors = list(errors) if errors is not None else None
        self.resets_at = resets_at

    def problem(self, instance: str) -> Problem:
        """The problem document."""
        return Problem(
            type=PROBLEM_TYPE_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
            job=JobStatusResponse.of(self.job) if self.job is not None else None,
            resets_at=self.resets_at,
        )


class Unauthenticated(ApiProblem):
    """No API key, an unknown one, or an invalid signed URL."""

    status = HTTPStatus.UNAUTHORIZED
    slug = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class JobNotFound(ApiProblem):
    """No such job for this principal (another principal's job included)."""

    status = HTTPStatus.NOT_FOUND
    slug = "job-not-found"
    title = "Job not found"

    def __init__(self, job_id: str) -> None:
        super().__init__(f"There is no job {job_id!r}.")


class ArtifactNotFound(ApiProblem):
    """The job has no such artifact (not requested, or no longer stored)."""

    status = HTTPStatus.NOT_FOUND
    slug = "artifact-not-found"
    title = "Artifact not found"


class JobNotFinished(ApiProblem):
    """A video route on a job that has not succeeded."""

    status = HTTPStatus.CONFLICT
    slug = "job-not-finished"
    title = "The job has not finished"

    def __init__(self, job: StoredJob) -> None:
        phase = job.status.phase
        reason = "is still running" if not phase.is_terminal else f"ended {phase.value}"
        super().__init__(f"Job {job.id!r} {reason}; its video exists only once it Succeeded.", job=job)


class JobAlreadyFinished(ApiProblem):
    """Cancelling a job that has already ended."""

    status = HTTPStatus.CONFLICT
    slug = "job-already-finished"
    title = "The job has already finished"

    def __init__(self, job: StoredJob) -> None:
        super().__init__(f"Job {job.id!r} already ended {job.status.phase.value}.", job=job)


class JobNotRetryable(ApiProblem):
    """Retrying a job that has not failed and was not cancelled."""

    status = HTTPStatus.CONFLICT
    slug = "job-not-retryable"
    title = "Only a Failed or Cancelled job can be retried"

    def __init__(self, job: StoredJob) -> None:
        super().__init__(f"Job {job.id!r} is {job.status.phase.value}.", job=job)


class IdempotencyKeyInUse(ApiProblem):
    """A retry arrived while the first request with its Idempotency-Key is still being processed."""

    status = HTTPStatus.CONFLICT
    slug = "idempotency-key-in-use"
    title = "A request with this Idempotency-Key is in progress"

    def __init__(self) -> None:
        super().__init__("Retry once the first request with this Idempotency-Key has been answered.")


class IdempotencyKeyReused(ApiProblem):
    """The Idempotency-Key was used before with another request body."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    slug = "idempotency-key-reused"
    title = "Idempotency-Key reused with another request"

    def __init__(self) -> None:
        issue = FieldIssue(
            field="Idempotency-Key",
            location="header",
            message="already used for a different request body",
            type="idempotency_key_reused",
        )
        super().__init__("Idempotency-Key: already used for a different request body.", errors=[issue])


class InvalidField(ApiProblem):
    """One input is invalid for a reason the schema cannot express."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    slug = "validation"
    title = "Invalid request"

    def __init__(self, field: str, location: str, message: str) -> None:
        issue = FieldIssue(field=field, location=location, message=message, type="value_error")
        super().__init__(f"{field}: {message}", errors=[issue])


class TooManyActiveJobs(ApiProblem):
    """The principal already has its cap of queued and running jobs."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    slug = "too-many-active-jobs"
    title = "Too many active jobs"

    def __init__(self, limit: int, retry_after_seconds: int) -> None:
        super().__init__(
            f"At most {limit} jobs may be queued or running at once; wait for one to end or cancel one.",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class DailyBudgetExhausted(ApiProblem):
    """The principal's jobs spent (or may still spend) its daily budget: a quota per UTC day, in USD.

    429, like any quota per period (RFC 6585), so that clients wait for Retry-After (the next UTC
    midnight) as they do for the active-job cap; 402 has no defined semantics (RFC 9110 reserves it).
    """

    status = HTTPStatus.TOO_MANY_REQUESTS
    slug = "daily-budget-exhausted"
    title = "Daily spending budget exhausted"

    def __init__(self, limit_usd: float, committed_usd: float, resets_at: datetime) -> None:
        wait = max(1, math.ceil((resets_at - datetime.now(UTC)).total_seconds()))
        super().__init__(
            f"Your jobs spent or may still spend ${committed_usd:.4f} of your ${limit_usd:.2f} daily budget; "
            f"it starts afresh at {resets_at.isoformat()} (UTC midnight).",
            headers={"Retry-After": str(wait)},
            resets_at=resets_at,
        )


class BackendUnavailable(ApiProblem):
    """The job backend cannot serve requests right now."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    slug = "backend-unavailable"
    title = "Job backend unavailable"


def _response(problem: Problem, headers: Mapping[str, str] | None = None) -> ProblemResponse:
    members = {name: value for name, value in problem.model_dump(mode="json").items() if value is not None}
    return ProblemResponse(members, problem.status, dict(headers or {}))


def _field_issue(error: Mapping[str, Any]) -> FieldIssue:
    location, *path = [str(part) for part in error["loc"]] or ["body"]
    if error["type"] == "json_invalid":  # located by character offset, not by field
        path = []
    return FieldIssue(
        field=".".join(path) or location,
        location=location,
        message=str(error["msg"]),
        type=str(error["type"]),
    )


async def _api_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, ApiProblem)
    return _response(error.problem(request.url.path), error.headers)


async def _validation_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, RequestValidationError)
    issues = [_field_issue(item) for item in error.errors()]
    problem = Problem(
        type=PROBLEM_TYPE_BASE + InvalidField.slug,
        title=InvalidField.title,
        status=HTTPStatus.UNPROCESSABLE_ENTITY,
        detail="; ".join(f"{issue.field}: {issue.message}" for issue in issues),
        instance=request.url.path,
        errors=issues,
    )
    return _response(problem)


async def _http_problem(request: Request, error: Exception) -> ProblemResponse:
    assert isinstance(error, HTTPException)
    phrase = HTTPStatus(error.status_code).phrase
    detail = error.detail if isinstance(error.detail, str) and error.detail != phrase else None
    problem = Problem(title=phrase, status=error.status_code, detail=detail, instance=request.url.path)
    headers = dict(error.headers or {})
    if error.status_code == HTTPStatus.METHOD_NOT_ALLOWED:  # Starlette names only the first route's methods
        headers["Allow"] = _allowed_methods(request)
    return _response(problem, headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def _server_problem(request: Request, error: Exception) -> ProblemResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    status = HTTPStatus.INTERNAL_SERVER_ERROR
    return _response(Problem(title=status.phrase, status=status, instance=request.url.path))


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` with problem+json, and describe the Problem schema in its OpenAPI."""
    app.add_exception_handler(ApiProblem, _api_problem)
    app.add_exception_handler(RequestValidationError, _validation_problem)
    app.add_exception_handler(HTTPException, _http_problem)
    app.add_exception_handler(Exception, _server_problem)
    app.openapi = _openapi_with_problems(app)  # type: ignore[method-assign]


def _openapi_with_problems(app: FastAPI) -> Callable[[], dict[str, Any]]:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in components:
            problem = Problem.model_json_schema(ref_template=_SCHEMA_REF + "{model}", mode="serialization")
            for name, definition in problem.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["Problem"] = problem
        return schema

    return openapi


def problem_responses(*statuses: HTTPStatus) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problem+json answers with these statuses."""
    return {
        int(status): {
            "description": status.phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _SCHEMA_REF + "Problem"}}},
        }
        for status in statuses
    }
