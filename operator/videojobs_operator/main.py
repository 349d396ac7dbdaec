"""Start the operator: Kopf (no peering), in given namespaces or cluster-wide, once this replica leads."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

import kopf
from kubernetes import client

import videojobs_operator.handlers  # noqa: F401  (importing registers the Kopf handlers)
from videojobs.leader import LeaderElector, candidate_identity
from videojobs.settings import pod_namespace
from videojobs_operator.handlers import WATCHED_RESOURCES
from videojobs_operator.health import OperatorHealth, WatchTracker, serve
from videojobs_operator.kube import api_client
from videojobs_operator.metrics import LEADER
from videojobs_operator.settings import OperatorSettings

EXIT_LOST_LEADERSHIP = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run(namespaces: str | Sequence[str] | None, settings: OperatorSettings | None = None) -> int:
    """Run until SIGINT/SIGTERM, watching `namespaces` (one name or several; all namespaces if None or
    empty); the exit code.

    With leader election (the default) this replica stands by until it holds the Lease (by default in
    the first watched namespace); a leader that loses it stops reconciling at once and exits with 1 (its
    pod restarts as a standby).
    """
    config = settings if settings is not None else OperatorSettings()
    watched = [namespaces] if isinstance(namespaces, str) else list(dict.fromkeys(namespaces or ()))
    kopf.configure(verbose=False)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # not a line per handled watch event
    try:
        return asyncio.run(_lead_and_operate(watched, config))
    except asyncio.CancelledError:  # how Kopf may end after a stop signal (kopf.run swallows it too)
        return 0


async def _lead_and_operate(namespaces: list[str], config: OperatorSettings) -> int:
    """Kopf watches each of `namespaces` (exact names: namespace scanning is off, handlers.start), or the
    whole cluster when there are none."""
    stop = asyncio.Event()
    watches = WatchTracker()
    watched = WATCHED_RESOURCES * max(1, len(namespaces))  # a watch per resource and namespace
    memo = kopf.Memo(config=config, stop_flag=stop, watches=watches)
    operate = kopf.operator(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        memo=memo,
        stop_flag=stop,
    )
    if not config.leader_election:
        health = OperatorHealth(memo, watches, watched, None)
        serve(config.metrics_port, config.metrics_address, health.alive, health.ready, health.role)
        await operate
        return 0
    elector = LeaderElector(
        client.CoordinationV1Api(api_client(1)),
        config.leader_election_namespace or (namespaces[0] if namespaces else pod_namespace()),
        config.leader_election_id,
        config.leader_election_identity or candidate_identity(),
        duration=config.lease_duration_seconds,
        renew_deadline=config.lease_renew_deadline_seconds,
        retry=config.lease_retry_seconds,
        on_change=lambda leading: _leading(health, leading),
    )
    health = OperatorHealth(memo, watches, watched, elector)
    serve(config.metrics_port, config.metrics_address, health.alive, health.ready, health.role)
    if not await _stand_by(elector):
        operate.close()
        return 0
    operator = asyncio.ensure_future(operate)
    holding = asyncio.ensure_future(elector.hold(healthy=health.work))
    await asyncio.wait({operator, holding}, return_when=asyncio.FIRST_COMPLETED)
    if holding.done():  # lost: stop before another replica starts, and say so
        stop.set()
        await operator
        return EXIT_LOST_LEADERSHIP
    holding.cancel()
    await elector.release()
    operator.result()
    return 0


def _leading(health: OperatorHealth, leading: bool) -> None:
    health.leading = leading
    LEADER.set(int(leading))


async def _stand_by(elector: LeaderElector) -> bool:
    """Wait for the Lease; False when SIGINT or SIGTERM came first (Kopf handles them once it runs)."""
    standby = asyncio.ensure_future(elector.acquire())
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, standby.cancel)
    try:
        await standby
    except asyncio.CancelledError:
        if not standby.cancelled():
            raise
        return False
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    return True
