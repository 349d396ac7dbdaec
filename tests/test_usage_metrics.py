"""Tokens, calls and cost by model as counters: deltas of usageByModel, never a job counted twice."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from videojobs.contract import Usage
from videojobs.usage_metrics import UsageMeter

MODEL = "openai/gpt-4o"


def usage(prompt: int, completion: int, cost: float, calls: int = 1) -> dict[str, Usage]:
    return {MODEL: Usage(llm_calls=calls, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)}


def test_growth_is_counted_and_a_first_sight_only_sets_the_baseline() -> None:
    registry = CollectorRegistry()
    meter = UsageMeter(registry)

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"model": MODEL, **labels}) or 0.0

    meter.observe("seen-at-start", usage(1000, 100, 1.0))  # a restart's listing: already counted before
    assert sample("videojobs_llm_cost_usd_total") == 0
    meter.observe("seen-at-start", usage(1500, 150, 1.25, calls=2))
    meter.observe_wire("new", {})
    meter.observe_wire("new", {"usageByModel": {MODEL: {"promptTokens": 10, "llmCalls": 1, "costUsd": 0.5}}})
    assert sample("videojobs_llm_tokens_total", type="prompt") == 510
    assert sample("videojobs_llm_tokens_total", type="completion") == 50
    assert sample("videojobs_llm_calls_total") == 2
    assert sample("videojobs_llm_cost_usd_total") == 0.75

    meter.observe("new", {})  # replaced by a new job of the same key: a new baseline, nothing negative
    meter.forget("seen-at-start")
    meter.observe("seen-at-start", usage(9000, 900, 9.0))
    assert sample("videojobs_llm_cost_usd_total") == 0.75
