"""Prometheus metrics of the operator, served on METRICS_PORT (health.py)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from videojobs.contract import Phase

VIDEOJOBS = Gauge("videojobs_videojobs", "VideoJobs the operator sees, by phase.", ["phase"])
STAGE_DURATION = Histogram(
    "videojobs_stage_duration_seconds",
    "Time a VideoJob spent in a pipeline stage, from its status transitions.",
    ["stage"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200),
)
QUEUE_WAIT = Histogram(
    "videojobs_queue_wait_seconds",
    "From the VideoJob's creation to its Job's start (admission wait).",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 14400),
)
RECONCILE_ERRORS = Counter(
    "videojobs_reconcile_errors_total", "Failed reconcile attempts (retried with backoff).", ["operation"]
)
ARTIFACT_DELETION_FAILURES = Counter(
    "videojobs_artifact_deletion_failures_total",
    "Failed deletions of a deleted VideoJob's artifacts in storage (retried with backoff).",
)
ARTIFACTS_LEFT = Counter(
    "videojobs_artifacts_left_total",
    "Deleted VideoJobs whose artifacts were left in storage: deletion failed for ARTIFACT_DELETION_TIMEOUT.",
)
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
