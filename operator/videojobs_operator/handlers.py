"""Kopf handlers: index VideoJobs, their Jobs and pods, and wake the reconciler when any of them changes.

Only indexes and event handlers: Kopf's change handlers (on.create/update/resume) would keep their
state in annotations, one more patch of every VideoJob and a diff of every watch event. The reconciler
is level-triggered instead: each event queues its VideoJob, whose Job and status it then brings in line.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from videojobs.crd import GROUP, PLURAL, VERSION
from videojobs_operator.controller import Controller, Key
from videojobs_operator.jobs import MANAGED_BY_LABEL, MANAGER, NAME_ANNOTATION
from videojobs_operator.kube import KubeApi
from videojobs_operator.settings import OperatorSettings
from videojobs_operator.status import JobView, PodView, VideoJobView

MANAGED = {MANAGED_BY_LABEL: MANAGER}
SELECTOR = f"{MANAGED_BY_LABEL}={MANAGER}"


def _child_key(namespace: str | None, annotations: kopf.Annotations, name: str) -> Key:
    return (namespace or "", annotations.get(NAME_ANNOTATION, name))


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **indexes: Any) -> None:
    """Configure Kopf (standalone, server-side label selectors) and start the reconciler."""
    videojobs: kopf.Index[Key, VideoJobView] = indexes["videojob_index"]
    jobs: kopf.Index[Key, JobView] = indexes["job_index"]
    pods: kopf.Index[Key, PodView] = indexes["pod_index"]
    config: OperatorSettings = memo.get("config") or OperatorSettings()
    settings.peering.standalone = True
    settings.scanning.disabled = True  # the CRD is installed first; no need to watch CRDs or namespaces
    settings.watching.label_selectors["batch", "v1", "jobs"] = SELECTOR
    settings.watching.label_selectors["", "v1", "pods"] = SELECTOR
    settings.posting.enabled = False  # the controller posts its own Events (kube.KubeApi.post_event)
    controller = Controller(config, KubeApi(config), videojobs, jobs, pods)
    controller.start()
    memo.controller = controller


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop the reconciler; raise the stop flag main.run gave Kopf, whatever stopped the operator.

    Kopf waits for that flag in a task of its own, and gives such tasks 5 s to end before it returns:
    after a SIGTERM that would hold every shutdown (and a rollout's Lease handover) for 5 s.
    """
    controller: Controller = memo.controller
    await controller.stop()
    stop_flag: asyncio.Event | None = memo.get("stop_flag")
    if stop_flag is not None:
        stop_flag.set()


@kopf.index(GROUP, VERSION, PLURAL)
async def videojob_index(
    body: kopf.Body, namespace: str | None, name: str, **_: Any
) -> dict[Key, VideoJobView]:
    """VideoJobs by (namespace, name)."""
    return {(namespace or "", name): VideoJobView.from_body(body)}


@kopf.index("batch", "v1", "jobs", labels=MANAGED)
async def job_index(
    body: kopf.Body, namespace: str | None, name: str, annotations: kopf.Annotations, **_: Any
) -> dict[Key, JobView]:
    """The operator's Jobs by their VideoJob's (namespace, name)."""
    return {_child_key(namespace, annotations, name): JobView.from_body(body)}


@kopf.index("", "v1", "pods", labels=MANAGED)
async def pod_index(
    body: kopf.Body, namespace: str | None, name: str, annotations: kopf.Annotations, **_: Any
) -> dict[Key, PodView]:
    """The pods of the operator's Jobs by their VideoJob's (namespace, name)."""
    return {_child_key(namespace, annotations, name): PodView.from_body(body)}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def videojob_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile the VideoJob (its Job and status); time its stages; forget it once deleted."""
    controller: Controller = memo.controller
    videojob = VideoJobView.from_body(body)
    key = (videojob.namespace, videojob.name)
    if type == "DELETED":
        controller.forget(key, videojob.uid)
        return
    controller.observe_stage(videojob)
    controller.kick(key)


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
async def job_changed(
    namespace: str | None, name: str, annotations: kopf.Annotations, memo: kopf.Memo, **_: Any
) -> None:
    """A Job moved: its VideoJob's status may change, and a queue slot may have freed up."""
    controller: Controller = memo.controller
    controller.kick(_child_key(namespace, annotations, name), queue=True)


@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_changed(
    namespace: str | None, name: str, annotations: kopf.Annotations, memo: kopf.Memo, **_: Any
) -> None:
    """A pod moved: its VideoJob's status may change (scheduling, image pulls, termination reasons)."""
    controller: Controller = memo.controller
    controller.kick(_child_key(namespace, annotations, name))
