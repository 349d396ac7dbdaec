"""LLM access through litellm over real HTTP to the fake server: re-asks, accounting, budget, errors."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading

import pytest
from fake_llm import FakeLLM

from videojobs.contract import Stage
from videojobs.errors import (
    BudgetExceededError,
    ConfigurationError,
    PlanningError,
    VideoGenerationError,
)
from videojobs.plans import ScenePlan
from videojobs_runner.llm import (
    LLMClient,
    UsageLedger,
    estimate_cost,
    json_reply,
    litellm,
    output_token_limit,
    require_credentials,
)

MODEL = "openai/gpt-4o-mini"
PLAN_REQUEST = [{"role": "user", "content": "Task: scene plan 1 of 3\nPlan it."}]


def client(ledger: UsageLedger | None = None, max_output_tokens: int = 1024) -> LLMClient:
    return LLMClient(
        ledger or UsageLedger(), timeout_seconds=30, retries=0, max_output_tokens=max_output_tokens
    )


def test_malformed_json_is_re_asked_with_the_validation_error(fake_llm: FakeLLM) -> None:
    llm = client()
    plan = asyncio.run(
        llm.ask(
            MODEL,
            PLAN_REQUEST,
            json_reply(ScenePlan),
            stage=Stage.PLANNING,
            attempts=3,
            error_type=PlanningError,
        )
    )
    assert plan.narration.startswith("A circle")
    assert fake_llm.tasks() == ["scene-plan-1-of-3", "scene-plan-1-of-3"]
    re_ask = fake_llm.requests[1]["messages"][-1]["content"]
    assert "not valid" in re_ask and "JSON" in re_ask
    assert llm.ledger.total.llm_calls == 2 and llm.ledger.total.total_tokens > 0
    assert llm.ledger.total.cost_usd > 0  # priced from litellm's bundled cost map
    assert llm.ledger.by_stage[Stage.PLANNING].llm_calls == 2
    assert llm.ledger.by_model == {MODEL: llm.ledger.total}  # tokens and cost by model (usageByModel)


def test_attempts_are_bounded_then_a_typed_error(fake_llm: FakeLLM) -> None:
    fake_llm.replies["scene-plan-1-of-3"] = ["not json at all"]
    with pytest.raises(PlanningError, match="after 2 attempts") as caught:
        asyncio.run(
            client().ask(
                MODEL,
                PLAN_REQUEST,
                json_reply(ScenePlan),
                stage=Stage.PLANNING,
                attempts=2,
                error_type=PlanningError,
            )
        )
    assert caught.value.stage is Stage.PLANNING and len(fake_llm.requests) == 2


def test_budget_refuses_the_call_that_could_exceed_it(fake_llm: FakeLLM) -> None:
    # The most the call can cost: its prompt tokens, counted by litellm, plus every allowed output token.
    estimate, prompt_tokens = estimate_cost(MODEL, PLAN_REQUEST, 1024)
    prompt_price, output_price = litellm.cost_per_token(model=MODEL, prompt_tokens=1, completion_tokens=1)
    assert prompt_tokens > 0 and estimate == pytest.approx(prompt_tokens * prompt_price + 1024 * output_price)

    ledger = UsageLedger(max_cost_usd=estimate)  # room for exactly one such call
    llm = client(ledger)
    asyncio.run(llm.complete(MODEL, PLAN_REQUEST, stage=Stage.PLANNING))
    spent = ledger.total.cost_usd
    assert 0 < spent <= estimate
    with pytest.raises(BudgetExceededError, match="max_cost_usd") as caught:
        asyncio.run(llm.complete(MODEL, PLAN_REQUEST, stage=Stage.CODE_GENERATION))
    assert caught.value.recoverable and caught.value.stage is Stage.CODE_GENERATION
    assert f"{prompt_tokens} prompt tokens, up to 1024 output tokens" in caught.value.message
    assert len(fake_llm.requests) == 1 and ledger.total.cost_usd == spent  # refused before sending


def test_calls_in_flight_hold_their_share_of_the_budget(fake_llm: FakeLLM) -> None:
    fake_llm.delay_seconds = 0.5  # the first call is still in flight when the second asks
    estimate, _ = estimate_cost(MODEL, PLAN_REQUEST, 1024)
    ledger = UsageLedger(max_cost_usd=estimate * 1.5)  # room for one call at its most, not two

    async def both() -> list[str | BaseException]:
        calls = [llm.complete(MODEL, PLAN_REQUEST, stage=Stage.SCENARIO_CREATION) for _ in range(2)]
        return await asyncio.gather(*calls, return_exceptions=True)

    llm = client(ledger)
    first, second = asyncio.run(both())
    assert isinstance(first, str)
    assert isinstance(second, BudgetExceededError) and "held by calls in flight" in second.message
    assert len(fake_llm.requests) == 1 and ledger.reserved_usd == 0.0


def test_output_cap_is_the_configured_one_or_the_models_own() -> None:
    assert output_token_limit(MODEL, 2048) == 2048
    assert output_token_limit(MODEL, 10**6) == litellm.get_model_info(MODEL)["max_output_tokens"]
    assert output_token_limit("openai/no-such-model", 4096) == 4096


def test_wrong_api_key_is_a_clear_non_recoverable_error(
    fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    with pytest.raises(VideoGenerationError, match="Incorrect API key") as caught:
        asyncio.run(client().complete(MODEL, PLAN_REQUEST, stage=Stage.PLANNING))
    assert not caught.value.recoverable


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        require_credentials("gemini/gemini-2.5-pro")


def test_litellm_import_makes_no_internet_request() -> None:
    """With every proxy pointing at our listener, importing the runner's LLM module connects nowhere."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connections.append(listener.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env.update(HTTP_PROXY=proxy, HTTPS_PROXY=proxy, ALL_PROXY=proxy, NO_PROXY="")
    code = "import videojobs_runner.llm as m; print(len(m.litellm.model_cost) > 100)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    stop.set()
    thread.join()
    assert result.stdout.strip() == "True", result.stderr
    assert connections == []
