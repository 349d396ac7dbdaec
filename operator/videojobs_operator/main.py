"""Start the operator: Kopf in standalone mode (no peering), namespaced or cluster-wide."""

from __future__ import annotations

import logging

import kopf

import videojobs_operator.handlers  # noqa: F401  (importing registers the Kopf handlers)
from videojobs_operator.metrics import serve
from videojobs_operator.settings import OperatorSettings


def run(namespace: str | None, settings: OperatorSettings | None = None) -> None:
    """Run until SIGINT/SIGTERM, watching `namespace` (all namespaces if None)."""
    config = settings if settings is not None else OperatorSettings()
    serve(config.metrics_port)
    kopf.configure(verbose=False)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # not a line per handled watch event
    kopf.run(
        standalone=True,
        clusterwide=namespace is None,
        namespaces=[namespace] if namespace else [],
        memo=kopf.Memo(config=config),
    )
