"""The container security context of every pod videojobs starts: the restricted Pod Security profile."""

from __future__ import annotations

from typing import Any


def restricted_container(uid: int) -> dict[str, Any]:
    """A container's securityContext for the restricted profile, running as `uid` on a read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
