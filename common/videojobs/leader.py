"""Leader election over a coordination.k8s.io Lease: of several replicas, one does the work.

The operator's replicas elect the one that reconciles, the API's the one that sends webhooks.

The algorithm of client-go's leaderelection package, which controller-runtime operators use:
- a candidate takes the Lease when it is free, or when its holder has not renewed it for
  leaseDurationSeconds, measured on the candidate's own clock from the moment it last saw the
  record change (the replicas' clocks need not agree);
- the leader renews it every `retry` seconds and steps down when it could not renew it within
  `renew_deadline` (before anyone else may take it);
- a leader that stops cleanly clears the holder, so that a standby takes over at once;
- a leader whose own work is stuck (the `healthy` check given to `hold`) stops renewing, so that a
  standby takes over once the Lease has expired.
Writes carry the resourceVersion read, so two candidates racing for a free Lease cannot both win.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

REQUEST_SECONDS = 5.0
"""Timeout of one Lease request (connect and read, in all): two attempts fit in the renew deadline."""
DURATION_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_SECONDS = 15.0, 10.0, 2.0
"""client-go's defaults: how long an unrenewed Lease holds, how long a leader tries to renew, how often."""


def candidate_identity() -> str:
    """This process as a holder: the pod's name (its hostname) and a unique suffix, as client-go does."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"


class LeaderElector:
    """Takes, holds and gives up the Lease `namespace`/`name` for `identity`."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        namespace: str,
        name: str,
        identity: str,
        *,
        duration: float = DURATION_SECONDS,
        renew_deadline: float = RENEW_DEADLINE_SECONDS,
        retry: float = RETRY_SECONDS,
        on_change: Callable[[bool], None] = lambda leading: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.retry = retry
        self.on_change = on_change
        """Called with True when this candidate starts leading, with False when it stops."""
        self._clock = clock
        self._observed: tuple[str, datetime | None] | None = None
        """The holder and renewTime last seen, and (below) when this process first saw them."""
        self._observed_at = 0.0
        self._answered: float | None = None
        """When the API server last answered a Lease request (None: never)."""

    def silent_for(self) -> float | None:
        """Seconds since the API server last answered about the Lease (None before the first attempt)."""
        return None if self._answered is None else self._clock() - self._answered

    @property
    def lease(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def try_acquire(self) -> bool:
        """One attempt to take (or renew) the Lease; whether this candidate holds it now."""
        if not await asyncio.to_thread(self._try_acquire_or_renew):
            return False
        log.info("leading: %s holds Lease %s", self.identity, self.lease)
        self.on_change(True)
        return True

    async def acquire(self) -> None:
        """Return once this candidate holds the Lease; until then it waits as a standby."""
        waiting = False
        while not await self.try_acquire():
            if not waiting:
                holder = self._observed[0] if self._observed else "nobody"
                log.info("standing by: Lease %s is held by %s", self.lease, holder)
                waiting = True
            await asyncio.sleep(self.retry)

    async def hold(self, healthy: Callable[[], str | None] = lambda: None) -> None:
        """Renew the Lease every `retry` seconds; return when it was not renewed within `renew_deadline`.

        `healthy` says why this leader should not lead on (None: it may): while it says so, the Lease
        is not renewed.
        """
        renewed = self._clock()
        while self._clock() - renewed < self.renew_deadline:
            await asyncio.sleep(self.retry)
            problem = healthy()
            if problem is not None:
                log.error("not renewing Lease %s: %s", self.lease, problem)
            elif await asyncio.to_thread(self._try_acquire_or_renew):
                renewed = self._clock()
        self.on_change(False)
        log.error("lost Lease %s: not renewed for %.0f s", self.lease, self._clock() - renewed)

    async def release(self) -> None:
        """Clear the holder if it is still this candidate: a standby need not wait for it to expire."""
        self.on_change(False)
        try:
            await asyncio.to_thread(self._release)
        except (ApiException, HTTPError) as error:
            log.warning("could not release Lease %s (%s); it expires by itself", self.lease, error)

    def _release(self) -> None:
        lease = self._read()
        if lease is None or lease.spec is None or lease.spec.holder_identity != self.identity:
            return
        now = datetime.now(UTC)
        lease.spec.holder_identity = ""
        lease.spec.lease_duration_seconds = 1
        lease.spec.acquire_time = lease.spec.renew_time = now
        self.api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=REQUEST_SECONDS)
        log.info("released Lease %s", self.lease)

    def _read(self) -> client.V1Lease | None:
        try:
            lease: client.V1Lease = self.api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=REQUEST_SECONDS
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return lease

    def _try_acquire_or_renew(self) -> bool:
        """One round: take the Lease if free or expired, renew it if held; whether this candidate holds it."""
        try:
            taken = self._take()
        except ApiException as error:
            self._answered = self._clock()
            if error.status != 409:  # 409: another candidate wrote first
                log.warning("Lease %s: %s %s", self.lease, error.status, error.reason)
        except (HTTPError, OSError) as error:
            log.warning("Lease %s: %s", self.lease, error)
        else:
            self._answered = self._clock()
            return taken
        return False

    def _take(self) -> bool:
        now = datetime.now(UTC)
        lease = self._read()
        if lease is None:
            spec = client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=round(self.duration),
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            )
            body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name), spec=spec)
            self.api.create_namespaced_lease(self.namespace, body, _request_timeout=REQUEST_SECONDS)
            self._see(self.identity, now)
            return True
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        self._see(holder, spec.renew_time)
        held_for = spec.lease_duration_seconds or self.duration
        if holder and holder != self.identity and self._clock() - self._observed_at < held_for:
            return False
        if holder != self.identity:
            spec.acquire_time = now
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
        spec.holder_identity = self.identity
        spec.renew_time = now
        spec.lease_duration_seconds = round(self.duration)
        lease.spec = spec
        self.api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=REQUEST_SECONDS)
        self._see(self.identity, now)
        return True

    def _see(self, holder: str, renewed: datetime | None) -> None:
        """Note the record as read; a change restarts the holder's time to live."""
        if self._observed != (holder, renewed):
            self._observed = (holder, renewed)
            self._observed_at = self._clock()
