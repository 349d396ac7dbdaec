"""The VideoJob operator: each VideoJob becomes a Kubernetes Job; its progress flows back into the status."""

from __future__ import annotations

from videojobs_operator.main import run

__all__ = ["run"]
