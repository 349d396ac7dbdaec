"""LLM access through litellm: usage and cost accounting, budget guard, and validated re-asking."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from videojobs.contract import Stage, Usage
from videojobs.errors import BudgetExceededError, ConfigurationError, VideoGenerationError

# Clusters are often air-gapped: never fetch litellm's price list from the internet at import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

litellm.suppress_debug_info = True

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Message = dict[str, str]

DEFAULT_SPEECH_VOICE = "alloy"
"""The voice asked of a speech model when the job names none (OpenAI's default voice)."""

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
    """Usage per stage, per model and in total, checked against an optional budget before each call."""

    max_cost_usd: float | None = None
    total: Usage = field(default_factory=Usage)
    by_stage: dict[Stage, Usage] = field(default_factory=dict)
    by_model: dict[str, Usage] = field(default_factory=dict)
    """The calls of each litellm model (the status' usageByModel: tokens and cost by model)."""
    reserved_usd: float = 0.0
    """The most the calls in flight can still cost (concurrent scenes call at once)."""

    def dump(self) -> str:
        """The usage per stage as JSON (stored so the per-stage sums survive a resume)."""
        return json.dumps(
            {stage.value: usage.model_dump() for stage, usage in self.by_stage.items()}, indent=2
        )

    def restore(self, stored: str | None) -> None:
        """Take up the per-stage sums of an earlier run (from `dump`)."""
        for stage, usage in json.loads(stored or "{}").items():
            self.by_stage[Stage(stage)] = Usage.model_validate(usage)

    def record(self, stage: Stage, usage: Usage, model: str | None = None) -> None:
        """Add one call's usage (and to its model's, when a model made it)."""
        self.total.add(usage)
        self.by_stage.setdefault(stage, Usage()).add(usage)
        if model is not None:
            self.by_model.setdefault(model, Usage()).add(usage)

    @contextmanager
    def reserve(self, stage: Stage, estimate_usd: float, what: str) -> Iterator[None]:
        """Hold a call's most possible cost while it runs; refuse it if that could exceed the budget."""
        if self.max_cost_usd is not None:
            spent, held = self.total.cost_usd, self.reserved_usd
            if spent >= self.max_cost_usd or spent + held + estimate_usd > self.max_cost_usd:
                in_flight = f" (+${held:.4f} held by calls in flight)" if held else ""
                raise BudgetExceededError(
                    f"stopped before {what}: it could cost up to ${estimate_usd:.4f} and ${spent:.4f}"
                    f"{in_flight} of the ${self.max_cost_usd:.4f} budget (max_cost_usd) is spent",
                    stage=stage,
                    recoverable=True,
                    suggestion="Raise max_cost_usd and retry the job; everything so far is kept.",
                )
        self.reserved_usd += estimate_usd
        try:
            yield
        finally:
            self.reserved_usd -= estimate_usd


def estimate_cost(model: str, messages: list[Message], max_output_tokens: int) -> tuple[float, int]:
    """The most a chat call can cost: its prompt tokens plus `max_output_tokens`; (cost, prompt tokens)."""
    try:
        prompt_tokens = int(litellm.token_counter(model=model, messages=messages))
        prompt_cost, output_cost = litellm.cost_per_token(
            model=model, prompt_tokens=prompt_tokens, completion_tokens=max_output_tokens
        )
    except Exception:  # models without a known price or tokenizer cost nothing we can count
        return 0.0, 0
    return float(prompt_cost) + float(output_cost), prompt_tokens


def speech_cost(model: str, text: str) -> float:
    """What a litellm speech model charges for `text` (0 for models without a known price)."""
    try:
        return float(litellm.completion_cost(model=model, prompt=text, call_type="speech") or 0.0)
    except Exception:  # unpriced models cost nothing we can count
        return 0.0


def output_token_limit(model: str, configured: int) -> int:
    """The output token cap for a call: the configured one, lowered to the model's own where known."""
    try:
        known = litellm.get_model_info(model).get("max_output_tokens")
    except Exception:  # unknown models: the configured cap stands
        known = None
    return min(configured, int(known)) if known else configured


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
            suggestion=f"export {missing[0]}=... (or pick another model: models.default)",
        )


class LLMClient:
    """Calls chat models via litellm and keeps the books in a UsageLedger."""

    def __init__(
        self, ledger: UsageLedger, *, timeout_seconds: float, retries: int, max_output_tokens: int
    ) -> None:
        self.ledger = ledger
        self.timeout_seconds = timeout_seconds
        self.retries = retries
        self.max_output_tokens = max_output_tokens

    async def complete(self, model: str, messages: list[Message], *, stage: Stage) -> str:
        """One chat completion, refused beforehand if it could exceed the budget; returns the reply text."""
        max_tokens = output_token_limit(model, self.max_output_tokens)
        estimate, prompt_tokens = estimate_cost(model, messages, max_tokens)
        what = (
            f"the next {stage.value} call ({prompt_tokens} prompt tokens, up to {max_tokens} output tokens)"
        )
        with self.ledger.reserve(stage, estimate, what):
            call = asyncio.ensure_future(self._call(model, messages, stage, max_tokens))
            try:
                response = await asyncio.shield(call)
            except asyncio.CancelledError:  # the job is stopping: a call already out is still paid for
                with contextlib.suppress(Exception):
                    self.ledger.record(stage, _usage_of(await call), model)
                raise
            self.ledger.record(stage, _usage_of(response), model)
        content = response.choices[0].message.content
        return content if isinstance(content, str) else ""

    async def speak(
        self, model: str, text: str, voice: str | None, audio_format: str, *, stage: Stage
    ) -> bytes:
        """Speech audio for `text` from a litellm speech model, refused beforehand if over the budget."""
        cost = speech_cost(model, text)
        with self.ledger.reserve(stage, cost, f"speaking {len(text)} characters with {model}"):
            try:
                response = await litellm.aspeech(
                    model=model,
                    input=text,
                    voice=voice or DEFAULT_SPEECH_VOICE,
                    response_format=audio_format,
                    timeout=self.timeout_seconds,
                )
            except openai.OpenAIError as error:
                raise provider_error(error, model, stage) from error
            usage = Usage(tts_calls=1, tts_characters=len(text), cost_usd=round(cost, 6))
            self.ledger.record(stage, usage, model)
        return bytes(response.content)

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

    async def _call(self, model: str, messages: list[Message], stage: Stage, max_tokens: int) -> Any:
        try:
            return await litellm.acompletion(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                timeout=self.timeout_seconds,
                num_retries=self.retries,
            )
        except openai.OpenAIError as error:
            raise provider_error(error, model, stage) from error


def provider_error(error: Exception, model: str, stage: Stage) -> VideoGenerationError:
    """A failed model call as a stage error; a bad key or model is final, rate limits and outages are not."""
    final = isinstance(
        error, openai.AuthenticationError | openai.PermissionDeniedError | openai.NotFoundError
    )
    return _stage_error(stage, f"{model}: {_first_line(error)}", recoverable=not final)


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
