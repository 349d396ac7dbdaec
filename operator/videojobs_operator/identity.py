"""The runner's identity per VideoJob: a ServiceAccount bound to a Role for that one VideoJob.

A Role shared by every runner could not name "its own" VideoJob; one per VideoJob can, by
resourceNames: the runner may get its VideoJob and patch its status, nothing else. All three objects
are owned by the VideoJob, so they go with it.
"""

from __future__ import annotations

from typing import Any

from videojobs.crd import GROUP, PLURAL
from videojobs.keys import MANAGED_BY_LABEL, NAME_ANNOTATION, OPERATOR_MANAGER

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"


RENDER_POD_RULE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "delete"]}
"""What a runner needs for its render pods (RENDER_ISOLATION=pod): create one, poll it, delete it."""


def runner_identity(
    namespace: str, videojob: str, identity: str, annotations: dict[str, str], *, render_pods: bool = False
) -> list[dict[str, Any]]:
    """The ServiceAccount, Role and RoleBinding named `identity` for the runner of VideoJob `videojob`.

    `annotations` go on the ServiceAccount (e.g. eks.amazonaws.com/role-arn for S3 through IRSA);
    `render_pods` adds RENDER_POD_RULE.
    """

    def metadata(extra: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "name": identity,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: OPERATOR_MANAGER},
            "annotations": {NAME_ANNOTATION: videojob, **(extra or {})},
        }

    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(annotations),
            "automountServiceAccountToken": False,  # only the runner pod, which asks for it, gets a token
        },
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "Role",
            "metadata": metadata(),
            "rules": [
                {"apiGroups": [GROUP], "resources": [PLURAL], "resourceNames": [videojob], "verbs": ["get"]},
                {
                    "apiGroups": [GROUP],
                    "resources": [f"{PLURAL}/status"],
                    "resourceNames": [videojob],
                    "verbs": ["patch"],
                },
                *([RENDER_POD_RULE] if render_pods else []),
            ],
        },
        {
            "apiVersion": RBAC_API_VERSION,
            "kind": "RoleBinding",
            "metadata": metadata(),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": identity},
            "subjects": [{"kind": "ServiceAccount", "name": identity, "namespace": namespace}],
        },
    ]
