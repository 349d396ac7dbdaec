"""LLM access through litellm: usage and cost accounting, budget guard, and validated re-asking."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from videojobs.contract import Stage, Usage
from videojobs_runner.errors import BudgetExceededError, ConfigurationError, VideoGenerationError

# Clusters are often air-gapped: never fetch litellm's price list from the internet at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

litellm.suppress_debug_info = True

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Message = dict[str, str]

_FENCE = re.compile(r"```(?:[a-zA-Z0-9_+-]*)\n(.*?)```", re.DOTALL)


class InvalidReply(ValueError):
    """A model reply that could not be used; the message is shown to the model on the re-ask."""


def fenced_block(text: str) -> str:
    """The body of the first fenced code block, or the whole text when there is none."""
    match = _FENCE.search(text)
    return (match.group(1) if match else text).strip()


def json_reply(model_type: type[M]) -> Callable[[str], M]:
    """A reply parser validating JSON (fenced or bare) against `model_type`."""

    def parse(text: str) -> M:
        body = fenced_block(text)
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end < start:
            raise InvalidReply("the reply contains no JSON object")
        try:
            return model_type.model_validate_json(body[start : end + 1])
        except ValidationError as error:
            raise InvalidReply(str(error)) from error

    return parse


@dataclass
class UsageLedger:
    """Usage per stage and in total, checked against an optional budget before each call."""

    max_cost_usd: float | None = None
    total: Usage = field(default_factory=Usage)
    by_stage: dict[Stage, Usage] = field(default_factory=dict)

    def record(self, stage: Stage, usage: Usage) -> None:
        """Add one call's usage."""
        self.total.add(usage)
        self.by_stage.setdefault(stage, Usage()).add(usage)

    def check_budget(self, stage: Stage) -> None:
        """Refuse the next call once the budget is spent."""
        if self.max_cost_usd is not None and self.total.cost_usd >= self.max_cost_usd:
            raise BudgetExceededError(
                f"spent ${self.total.cost_usd:.4f} of the ${self.max_cost_usd:.4f} budget "
                "before the next model call",
                stage=stage,
                recoverable=True,
            )


def require_credentials(model: str) -> None:
    """Fail early, in one line naming the variable, when a model's API key is not configured."""
    try:
        check = litellm.validate_environment(model=model)
    except Exception:  # unknown providers: let the first call report the problem
        return
    missing = [key for key in check.get("missing_keys", []) if key]
    if missing:
        raise ConfigurationError(
            f"model {model!r} needs {', '.join(missing)} in the environment",
            suggestion=f"export {missing[0]}=... (or pick another model with --model)",
        )


class LLMClient:
    """Calls chat models via litellm and keeps the books in a UsageLedger."""

    def __init__(self, ledger: UsageLedger, *, timeout_seconds: float, retries: int) -> None:
        self.ledger = ledger
        self.timeout_seconds = timeout_seconds
        self.retries = retries

    async def complete(self, model: str, messages: list[Message], *, stage: Stage) -> str:
        """One chat completion; returns the reply text."""
        self.ledger.check_budget(stage)
        response = await self._call(model, messages, stage)
        self.ledger.record(stage, _usage_of(response))
        content = response.choices[0].message.content
        return content if isinstance(content, str) else ""

    async def ask(
        self,
        model: str,
        messages: list[Message],
        parse: Callable[[str], T],
        *,
        stage: Stage,
        attempts: int,
        error_type: type[VideoGenerationError],
    ) -> T:
        """Ask until `parse` accepts the reply, feeding each rejection back; at most `attempts` calls."""
        conversation = list(messages)
        problem = ""
        for _ in range(attempts):
            reply = await self.complete(model, conversation, stage=stage)
            try:
                return parse(reply)
            except InvalidReply as error:
                problem = str(error)
                conversation += [
                    {"role": "assistant", "content": reply},
                    {
                        "role": "user",
                        "content": f"That reply was not valid:\n{problem}\n"
                        "Answer again with the whole corrected reply, in the required format only.",
                    },
                ]
        raise error_type(f"no valid reply from {model} after {attempts} attempts; last problem: {problem}")

    async def _call(self, model: str, messages: list[Message], stage: Stage) -> Any:
        try:
            return await litellm.acompletion(
                model=model, messages=messages, timeout=self.timeout_seconds, num_retries=self.retries
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as error:
            raise _stage_error(stage, f"{model}: {_first_line(error)}", recoverable=False) from error
        except openai.OpenAIError as error:  # rate limits, timeouts, outages: a resume may succeed
            raise _stage_error(stage, f"{model}: {_first_line(error)}", recoverable=True) from error


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _stage_error(stage: Stage, message: str, *, recoverable: bool) -> VideoGenerationError:
    return VideoGenerationError(
        message,
        stage=stage,
        recoverable=recoverable,
        suggestion="Check the model name, its API key and endpoint, then resume the job.",
    )


def _usage_of(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    try:
        cost = float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # models without a known price cost nothing we can count
        cost = 0.0
    return Usage(
        llm_calls=1,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost_usd=round(cost, 6),
    )
