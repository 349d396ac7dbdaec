"""Every label and annotation key videojobs puts on Kubernetes objects, spelled once."""

from __future__ import annotations

from videojobs.crd import GROUP

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OPERATOR_MANAGER = "videojobs-operator"
"""managed-by of the operator's Jobs and runner pods (the runners' NetworkPolicy selects it)."""
RUNNER_MANAGER = "videojobs-runner"
"""managed-by of render pods: not the operator's value, so the runners' NetworkPolicy never selects them."""
ROLE_LABEL = f"{GROUP}/role"
RENDER_ROLE = "render"
"""The role label's value on render pods (their NetworkPolicy and admission policy select it)."""

NAME_LABEL = f"{GROUP}/name"
"""On Jobs and runner pods: the VideoJob they belong to (when its name fits a label value)."""
NAME_ANNOTATION = f"{GROUP}/name"
"""The same, always: a VideoJob's name may be longer than a label value."""
PRIORITY_ANNOTATION = f"{GROUP}/priority"
"""On Jobs: the value of the VideoJob's PriorityClass, which orders the operator's queue."""
JOB_CREATED_ANNOTATION = f"{GROUP}/created"
"""On Jobs: when their VideoJob was created, the tie-break of the operator's queue."""
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

OWNER_LABEL = f"{GROUP}/owner"
"""On VideoJobs made by the API: the owner principal, label-safe (`-l videojobs.io/owner=alice`)."""
IDEMPOTENCY_LABEL = f"{GROUP}/idempotency-key"
"""A hash of the owner and Idempotency-Key (keys are not label-safe)."""
OWNER_ANNOTATION = f"{GROUP}/owner"
FINGERPRINT_ANNOTATION = f"{GROUP}/request-fingerprint"
CREATED_AT_ANNOTATION = f"{GROUP}/created-at"
"""Creation time in microseconds: creationTimestamp has whole seconds, too coarse to order a list."""
WEBHOOK_SENT_ANNOTATION = f"{GROUP}/webhook-sent"
"""The final event whose webhook was sent, so no replica or restart sends it again."""
