"""videojobs.leader against an in-memory Lease store that checks resourceVersions like the API server.

The real API server runs these paths too (tests/test_operator_k8s.py); here the clock is the test's,
so expiry, clock skew and a lost race can be shown exactly.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from videojobs.leader import LeaderElector


class Leases:
    """read/create/replace of one namespace's Leases, with optimistic concurrency (409 on a stale write)."""

    def __init__(self) -> None:
        self.stored: dict[str, client.V1Lease] = {}
        self.version = 0

    def read_namespaced_lease(self, name: str, namespace: str, **_: object) -> client.V1Lease:
        if name not in self.stored:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.stored[name])

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease, **_: object) -> None:
        if body.metadata.name in self.stored:
            raise ApiException(status=409, reason="AlreadyExists")
        self._store(body)

    def replace_namespaced_lease(self, name: str, namespace: str, body: client.V1Lease, **_: object) -> None:
        if body.metadata.resource_version != self.stored[name].metadata.resource_version:
            raise ApiException(status=409, reason="Conflict")
        self._store(body)

    def _store(self, body: client.V1Lease) -> None:
        self.version += 1
        stored = copy.deepcopy(body)
        stored.metadata.resource_version = str(self.version)
        self.stored[stored.metadata.name] = stored

    def holder(self) -> str:
        return str(self.stored["lease"].spec.holder_identity)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(leases: Leases, identity: str, clock: Clock) -> LeaderElector:
    return LeaderElector(
        leases,  # type: ignore[arg-type]
        "ns",
        "lease",
        identity,
        duration=15,
        renew_deadline=10,
        retry=0.01,
        clock=clock,
    )


def test_a_standby_takes_the_lease_only_after_it_saw_no_renewal_for_the_lease_duration() -> None:
    leases, clock = Leases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)

    async def scenario() -> None:
        assert await a.try_acquire() and leases.holder() == "a"
        # The holder's renewTime lies far in the past by b's wall clock (skew): b goes by its own
        # observation of the record instead, and waits a whole duration from its first sight of it.
        leases.stored["lease"].spec.renew_time = datetime.now(UTC) - timedelta(hours=1)
        assert not await b.try_acquire()
        clock.now += 14
        assert not await b.try_acquire()
        assert await a.try_acquire()  # a renews: the record changes ...
        clock.now += 1
        assert not await b.try_acquire()  # ... and b's wait starts again when it sees that
        clock.now += 14
        assert not await b.try_acquire()
        clock.now += 2  # 16 s since b saw the last change: expired
        assert await b.try_acquire() and leases.holder() == "b"
        assert leases.stored["lease"].spec.lease_transitions == 1

    asyncio.run(scenario())


def test_a_release_frees_the_lease_at_once_and_only_its_holder_releases() -> None:
    leases, clock = Leases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)

    async def scenario() -> None:
        assert await a.try_acquire()
        await b.release()  # not b's: nothing changes
        assert leases.holder() == "a"
        await a.release()
        assert leases.holder() == ""
        assert await b.try_acquire() and leases.holder() == "b"

    asyncio.run(scenario())


def test_of_two_candidates_racing_for_a_free_lease_one_wins() -> None:
    leases, clock = Leases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)

    async def scenario() -> None:
        assert await a.try_acquire()
        await a.release()
        stale = leases.read_namespaced_lease("lease", "ns")  # b read the free Lease ...
        assert await a.try_acquire()  # ... then a took it back first
        leases.read_namespaced_lease = lambda *_, **__: copy.deepcopy(stale)  # type: ignore[method-assign]
        assert not await b.try_acquire()  # b's write carries the old resourceVersion: 409
        assert leases.holder() == "a"

    asyncio.run(scenario())


def test_a_leader_that_cannot_renew_gives_up_within_the_renew_deadline() -> None:
    leases, clock = Leases(), Clock()
    a = elector(leases, "a", clock)
    changes: list[bool] = []
    a.on_change = changes.append

    async def scenario() -> None:
        await a.acquire()

        def unreachable(*_: object, **__: object) -> None:
            clock.now += 1  # every failed attempt takes a second
            raise ApiException(status=503, reason="Service Unavailable")

        leases.read_namespaced_lease = unreachable  # type: ignore[method-assign,assignment]
        await asyncio.wait_for(a.hold(), 5)
        assert clock.now - 1000 >= 10

    asyncio.run(scenario())
    assert changes == [True, False]


@pytest.mark.parametrize("status", [500, 403])
def test_errors_are_no_lease_and_no_crash(status: int) -> None:
    leases, clock = Leases(), Clock()

    def failing(*_: object, **__: object) -> None:
        raise ApiException(status=status, reason="boom")

    leases.read_namespaced_lease = failing  # type: ignore[method-assign,assignment]
    assert not asyncio.run(elector(leases, "a", clock).try_acquire())


def test_a_leader_whose_work_is_stuck_stops_renewing_and_gives_up() -> None:
    leases, clock = Leases(), Clock()
    a = elector(leases, "a", clock)
    renewals: list[str] = []

    async def scenario() -> None:
        await a.acquire()
        assert a.silent_for() == 0  # the API server answered just now

        def stuck() -> str:
            clock.now += 1  # a second per round
            renewals.append(leases.stored["lease"].metadata.resource_version)
            return "work pending and no reconcile done for 60 s"

        await asyncio.wait_for(a.hold(healthy=stuck), 5)

    asyncio.run(scenario())
    assert len(set(renewals)) == 1  # not renewed once: a standby takes over when the Lease expires
    assert clock.now - 1000 >= 10
