"""Reading and writing VideoJobs and their objects with kubectl in the operator's real-cluster tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from k8s_cluster import K8sCluster
from k8s_cluster import wait_for as poll
from operator_process import Operator

T = TypeVar("T")


def wait_for(
    what: str, probe: Callable[[], T | None], timeout: float = 60, operator: Operator | None = None
) -> T:
    """Poll like k8s_cluster.wait_for, showing the operator's log on a timeout."""
    return poll(what, probe, timeout, (lambda: f"\noperator log:\n{operator.tail()}") if operator else None)


def get(cluster: K8sCluster, namespace: str, *what: str) -> Any:
    """`kubectl get … -o json`, or None when it is not there."""
    done = cluster.kubectl("-n", namespace, "get", *what, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def apply(cluster: K8sCluster, namespace: str, *objects: dict[str, Any]) -> None:
    """`kubectl apply` the objects as one List."""
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(items))


def videojob(name: str, **spec: Any) -> dict[str, Any]:
    """A VideoJob manifest with a topic from its name and these spec fields."""
    return {
        "apiVersion": "videojobs.io/v1alpha1",
        "kind": "VideoJob",
        "metadata": {"name": name},
        "spec": {"topic": f"Topic of {name}", **spec},
    }


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An object's status conditions by type."""
    return {c["type"]: c for c in obj["status"].get("conditions", [])}
