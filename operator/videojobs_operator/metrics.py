"""Prometheus metrics of the operator, served on METRICS_PORT (health.py); all named videojobs_*."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from videojobs.contract import Phase
from videojobs.usage_metrics import UsageMeter

VIDEOJOBS = Gauge("videojobs_videojobs", "VideoJobs the operator sees, by phase.", ["phase"])
STAGE_DURATION = Histogram(
    "videojobs_stage_duration_seconds",
    "Time a VideoJob spent in a pipeline stage, from its status transitions.",
    ["stage"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
ADMISSION_WAIT = Histogram(
    "videojobs_admission_wait_seconds",
    "From the VideoJob's creation to its Job's start (admission wait).",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400),
)
RECONCILE_ERRORS = Counter(
    "videojobs_reconcile_errors_total",
    "Failed reconcile steps (retried with backoff), by kind (reconcile, job, event, housekeeping) and "
    "reason (the HTTP status of the failed call, Unreachable, RetryLater or an error type).",
    ["kind", "reason"],
)
ARTIFACT_DELETION_FAILURES = Counter(
    "videojobs_artifact_deletion_failures_total",
    "Failed deletions of a deleted VideoJob's artifacts in storage (retried with backoff).",
)
ARTIFACTS_LEFT = Counter(
    "videojobs_artifacts_left_total",
    "Deleted VideoJobs whose artifacts were left in storage: deletion failed for ARTIFACT_DELETION_TIMEOUT.",
)
_WORK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WORKQUEUE_DEPTH = Gauge("videojobs_workqueue_depth", "VideoJobs waiting in the reconcile work queue.")
WORKQUEUE_ADDS = Counter("videojobs_workqueue_adds", "VideoJobs queued for a reconcile.")
WORKQUEUE_WAIT = Histogram(
    "videojobs_workqueue_queue_duration_seconds",
    "How long a VideoJob waited in the work queue before a worker took it.",
    buckets=_WORK_BUCKETS,
)
WORKQUEUE_WORK = Histogram(
    "videojobs_workqueue_work_duration_seconds",
    "How long one reconcile of a VideoJob took (its API calls included).",
    buckets=_WORK_BUCKETS,
)
USAGE = UsageMeter()
"""Tokens, calls and cost by model, from the growth of each VideoJob's status.usageByModel."""
LEADER = Gauge(
    "videojobs_operator_leader", "1 while this replica holds the leader Lease and reconciles, else 0."
)
API_REQUESTS = Counter(
    "videojobs_operator_api_requests_total",
    "Kubernetes API requests made by the operator's own client (not Kopf's watches and patches).",
    ["verb", "resource", "code"],
)
API_THROTTLED_SECONDS = Counter(
    "videojobs_operator_api_throttled_seconds_total",
    "Time API calls waited for the client-side rate limiter (API_QPS, API_BURST).",
)


def count_phases(phases: Iterable[Phase | None]) -> None:
    """Set the by-phase gauge (a VideoJob without a phase yet counts as Pending)."""
    tally = Tally(phase or Phase.PENDING for phase in phases)
    for phase in Phase:
        VIDEOJOBS.labels(phase.value).set(tally.get(phase, 0))
