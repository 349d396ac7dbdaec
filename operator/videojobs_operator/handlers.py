"""Kopf handlers: index VideoJobs, their Jobs and pods, and wake the reconciler when any of them changes.

Only indexes and event handlers: Kopf's change handlers (on.create/update/resume) would keep their
state in annotations, one more patch of every VideoJob and a diff of every watch event. The reconciler
is level-triggered instead: each event queues its VideoJob, whose Job and status it then brings in line.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kopf

from videojobs import deadlines
from videojobs.crd import GROUP, PLURAL, VERSION
from videojobs.keys import MANAGED_BY_LABEL, NAME_ANNOTATION, OPERATOR_MANAGER
from videojobs.settings import Settings
from videojobs.storage import storage_from_settings
from videojobs_operator.controller import Controller
from videojobs_operator.health import WatchTracker
from videojobs_operator.kube import KubeApi
from videojobs_operator.metrics import USAGE
from videojobs_operator.settings import OperatorSettings
from videojobs_operator.status import JobView, Key, PodView, VideoJobView, WorkloadView

MANAGED = {MANAGED_BY_LABEL: OPERATOR_MANAGER}
SELECTOR = f"{MANAGED_BY_LABEL}={OPERATOR_MANAGER}"
LIST_SECONDS = 60.0
"""Kopf's deadline for one whole list or patch (a list of thousands of objects takes seconds)."""
WATCHED_RESOURCES = 3
"""VideoJobs, Jobs and pods: the resources Kopf watches for the indexes below (Kueue's Workloads too,
where Kueue is installed: not counted, as they are optional)."""
KUEUE_GROUP, KUEUE_VERSION, WORKLOADS = "kueue.x-k8s.io", "v1beta2", "workloads"


def set_deadlines(settings: kopf.OperatorSettings) -> None:
    """Deadlines for Kopf's requests and watches (videojobs.deadlines), so that a silent network is noticed.

    Each watch is ended by the server after WATCH_SECONDS and resumed from its resourceVersion; one that
    has been silent for WATCH_SILENCE_SECONDS (Kopf's default: 70 s) is reopened.
    """
    settings.networking.connect_timeout = deadlines.CONNECT_SECONDS
    settings.networking.request_timeout = LIST_SECONDS
    settings.watching.connect_timeout = deadlines.CONNECT_SECONDS
    settings.watching.server_timeout = deadlines.WATCH_SECONDS
    settings.watching.client_timeout = deadlines.WATCH_SECONDS + deadlines.WATCH_SILENCE_SECONDS
    settings.watching.inactivity_timeout = deadlines.WATCH_SILENCE_SECONDS


def _child_key(namespace: str | None, annotations: kopf.Annotations, name: str) -> Key:
    return (namespace or "", annotations.get(NAME_ANNOTATION, name))


@kopf.on.login()
async def login(memo: kopf.Memo, **kwargs: Any) -> kopf.AiohttpSession | None:
    """Kopf's own login (the kubernetes client's loaders), on a session with TCP keep-alive
    (videojobs.deadlines) whose watch answers the readiness probe follows (health.WatchTracker)."""
    info = kopf.login_via_client(**kwargs)
    if info is None:
        return None
    watches: WatchTracker | None = memo.get("watches")
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=0,
            ssl=info.as_ssl_context(),
            socket_factory=deadlines.keepalive_socket,
            keepalive_timeout=deadlines.IDLE_SECONDS,
        ),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
        trace_configs=[watches.trace()] if watches is not None else None,
    )
    return kopf.AiohttpSession(
        aiohttp_session=session,
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **indexes: Any) -> None:
    """Configure Kopf (standalone, server-side label selectors) and start the reconciler."""
    videojobs: kopf.Index[Key, VideoJobView] = indexes["videojob_index"]
    jobs: kopf.Index[Key, JobView] = indexes["job_index"]
    pods: kopf.Index[Key, PodView] = indexes["pod_index"]
    workloads: kopf.Index[tuple[str, str], WorkloadView] = indexes["workload_index"]
    config: OperatorSettings = memo.get("config") or OperatorSettings()
    settings.peering.standalone = True
    settings.scanning.disabled = True  # the CRD is installed first; no need to watch CRDs or namespaces
    settings.watching.label_selectors["batch", "v1", "jobs"] = SELECTOR
    settings.watching.label_selectors["", "v1", "pods"] = SELECTOR
    settings.posting.enabled = False  # the controller posts its own Events (kube.KubeApi.post_event)
    set_deadlines(settings)
    storage = storage_from_settings(Settings())  # the runners' storage (STORAGE_BACKEND, OUTPUT_DIR, S3_*)
    controller = Controller(config, KubeApi(config), videojobs, jobs, pods, storage, workloads)
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
    """VideoJobs by (namespace, name): only those this operator manages (spec.managedBy unset or its own)."""
    videojob = VideoJobView.from_body(body)
    return {(namespace or "", name): videojob} if videojob.managed_here else {}


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
    """Reconcile the VideoJob (its Job and status); time its stages, count its usage; forget it once
    deleted."""
    controller: Controller = memo.controller
    videojob = VideoJobView.from_body(body)
    if not videojob.managed_here:  # another controller's (MultiKueue): left alone entirely
        return
    key = (videojob.namespace, videojob.name)
    if type == "DELETED":
        controller.forget(key, videojob.uid)
        USAGE.forget(videojob.uid)
        return
    controller.observe_stage(videojob)
    USAGE.observe_wire(videojob.uid, body.get("status") or {})
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


def _owned_by_job(body: kopf.Body, **_: Any) -> bool:
    return any(ref.get("kind") == "Job" for ref in body.get("metadata", {}).get("ownerReferences") or ())


@kopf.index(KUEUE_GROUP, KUEUE_VERSION, WORKLOADS, when=_owned_by_job)
async def workload_index(
    body: kopf.Body, namespace: str | None, **_: Any
) -> dict[tuple[str, str], WorkloadView]:
    """Kueue's Workloads of Jobs by (namespace, the Job's uid). Kopf skips this watch (with a warning)
    where Kueue's CRDs are not installed when the operator starts."""
    view = WorkloadView.from_body(body)
    return {(namespace or "", view.job_uid or ""): view}


@kopf.on.event(KUEUE_GROUP, KUEUE_VERSION, WORKLOADS, when=_owned_by_job)
async def workload_changed(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Kueue admitted, held or preempted a Job: its VideoJob's status shows it (and the places in its
    LocalQueue may have moved)."""
    controller: Controller = memo.controller
    controller.workload_changed(namespace or "", WorkloadView.from_body(body))
