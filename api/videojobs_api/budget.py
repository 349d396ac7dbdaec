"""Per-principal daily spending budgets (UTC days): what is left, and the max_cost_usd a new run gets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from videojobs.contract import GenerationRequest
from videojobs_api.backends.base import ACTIVE_PHASES
from videojobs_api.models import StoredJob
from videojobs_api.problems import DailyBudgetExhausted

MAX_COST_USD = 10_000.0
"""The contract's highest max_cost_usd."""


@dataclass(frozen=True)
class Budget:
    """A principal's day: its limit, what its jobs spent, and what its active jobs may still spend."""

    limit_usd: float
    spent_usd: float
    held_usd: float
    resets_at: datetime

    @property
    def left_usd(self) -> float:
        """What a new run may still spend today."""
        return max(0.0, self.limit_usd - self.spent_usd - self.held_usd)


def budget_today(
    limit_usd: float | None, jobs: Iterable[StoredJob], now: datetime | None = None
) -> Budget | None:
    """The budget of a principal with these jobs (None without a limit).

    Spent: the cost of its jobs created today, ended today or still active (a job's whole cost counts
    on each day it ran). Held: what its active jobs may still spend, their max_cost_usd less their
    cost, so that jobs running side by side cannot together go over the budget.
    """
    if limit_usd is None:
        return None
    now = now or datetime.now(UTC)
    midnight = datetime.combine(now.date(), time(), UTC)
    spent = held = 0.0
    for job in jobs:
        status = job.status
        active = status.phase in ACTIVE_PHASES
        ended_today = status.completion_time is not None and status.completion_time >= midnight
        if active or ended_today or job.created_at >= midnight:
            spent += status.usage.cost_usd
        cap = job.request.max_cost_usd
        if active and cap is not None:
            held += max(0.0, cap - status.usage.cost_usd)
    return Budget(limit_usd, spent, held, midnight + timedelta(days=1))


def capped(budget: Budget | None, request: GenerationRequest, spent_usd: float = 0.0) -> GenerationRequest:
    """`request` with max_cost_usd at most what is left (plus `spent_usd`, a retried job's cost so far).

    DailyBudgetExhausted when nothing is left.
    """
    if budget is None:
        return request
    left = round(budget.left_usd, 6)
    if left <= 0:
        raise DailyBudgetExhausted(budget.limit_usd, budget.spent_usd + budget.held_usd, budget.resets_at)
    cap = min(round(spent_usd + left, 6), MAX_COST_USD)
    if request.max_cost_usd is not None and request.max_cost_usd <= cap:
        return request
    return request.model_copy(update={"max_cost_usd": cap})
