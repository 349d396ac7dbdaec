"""Tokens, calls and cost by model as Prometheus counters, from the deltas of jobs' status.usageByModel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from videojobs.contract import Usage


class UsageMeter:
    """Counts what each job's usage by model grew by since this process last saw it.

    The first sight of a job (a restart's initial listing, a new job with no usage yet) only sets its
    baseline, so a restart never counts a job's usage twice; what a job spent while no process watched
    it is not counted (counters may undercount, never overcount). A usage that shrank (a job replaced
    by a new one of the same key) becomes the new baseline.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.tokens = Counter(
            "videojobs_llm_tokens",
            "LLM tokens used by jobs, by model and type (prompt or completion).",
            ["model", "type"],
            registry=registry,
        )
        self.calls = Counter(
            "videojobs_llm_calls",
            "LLM and speech calls made by jobs, by model.",
            ["model"],
            registry=registry,
        )
        self.cost = Counter(
            "videojobs_llm_cost_usd",
            "What jobs' LLM and speech calls cost (USD, litellm's prices), by model.",
            ["model"],
            registry=registry,
        )
        self._seen: dict[str, dict[str, Usage]] = {}

    def observe(self, key: str, by_model: Mapping[str, Usage]) -> None:
        """Count the growth of `key`'s usage by model since the last observation (none the first time)."""
        previous = self._seen.get(key)
        self._seen[key] = {model: usage.model_copy() for model, usage in by_model.items()}
        if previous is None:
            return
        for model, usage in by_model.items():
            before = previous.get(model, Usage())
            self._count(model, "prompt", usage.prompt_tokens - before.prompt_tokens, self.tokens)
            self._count(model, "completion", usage.completion_tokens - before.completion_tokens, self.tokens)
            calls = usage.llm_calls + usage.tts_calls - before.llm_calls - before.tts_calls
            self._count(model, None, calls, self.calls)
            self._count(model, None, usage.cost_usd - before.cost_usd, self.cost)

    def observe_wire(self, key: str, status: Mapping[str, Any]) -> None:
        """`observe` from a VideoJob's status JSON (usageByModel in camelCase)."""
        wire = status.get("usageByModel") or {}
        self.observe(key, {model: Usage.model_validate(usage) for model, usage in wire.items()})

    def forget(self, key: str) -> None:
        """Drop a deleted job's baseline."""
        self._seen.pop(key, None)

    @staticmethod
    def _count(model: str, kind: str | None, amount: float, counter: Counter) -> None:
        if amount > 0:
            (counter.labels(model, kind) if kind is not None else counter.labels(model)).inc(amount)
