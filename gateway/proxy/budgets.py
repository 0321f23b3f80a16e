"""Quotas and budgets on the hot path: reserve a call's worst case before it goes, settle what it used after.

The worst case of a call is its prompt, counted offline with OpenAI's tokenizer (plus the chat format's few
tokens per message), and its completion: the client's ``max_tokens`` / ``max_completion_tokens``, or — when it
names none — the policy's default (4,096 unless a policy says otherwise). Its cost is priced with the dearest
deployment that could serve it, so a fallback to another deployment never spends more than was reserved.

- A call that is not streamed and names no maximum gets the default as its ``max_tokens``: an answer cannot be
  stopped halfway, so it is capped where its reservation ends.
- A streamed call is metered as it flows: when the completion outgrows its reservation, the reservation grows
  (one more Redis round trip per default-sized step) and, when the budget cannot cover the next chunk, the
  stream ends with an error chunk. What was streamed is what is settled.
- Whatever happens (an answer, an upstream error, a client that left), ``settlements`` turns the reservation
  into what the call really used: tokens and cost from the usage the provider reported, or counted as the
  stream passed when it reported none; a request counts when it was answered.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.policies import EffectivePolicy
from gateway.proxy.errors import bad_request
from gateway.proxy.limits import PeriodQuota, Settlement, Take
from gateway.proxy.snapshot import Target

MAX_TOKENS_CEILING = 10_000_000  # more than any model's window: a larger number is a mistake, not a wish
PER_MESSAGE_TOKENS = 4  # what OpenAI's chat format adds around each message (an upper bound)


@functools.cache
def _encoding() -> Any:
    from litellm.litellm_core_utils.default_encoding import encoding  # bundled, offline (cl100k_base)

    return encoding


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=())) if text else 0


def texts(value: Any) -> list[str]:
    """Every string in a message's content (plain, or a list of parts) or an embeddings input."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for part in value.values() for text in texts(part)]
    if isinstance(value, list):
        return [text for part in value for text in texts(part)]
    return []


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt's size in tokens, counted offline: every text of every message (tool calls included), or
    the embeddings input (token-id lists count one per id)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        total = 3  # every reply is primed with a few tokens
        for message in messages:
            total += PER_MESSAGE_TOKENS + sum(count_tokens(text) for text in texts(message))
        return total
    value = body.get("input")
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return sum(len(v) if all(isinstance(i, int) for i in v) else count_tokens(str(v)) for v in value)
    return max(1, sum(count_tokens(text) for text in texts(value)))


def requested_max_tokens(body: dict[str, Any]) -> int | None:
    """The client's completion limit, if it set one; a value that is not a sane whole number is a 400.

    Negative, zero, fractional, NaN, boolean or absurdly large values could otherwise shrink a reservation to
    nothing (or overflow one); none of them reaches a provider.
    """
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOKENS_CEILING:
            raise bad_request(f"'{name}' must be a whole number from 1 to {MAX_TOKENS_CEILING:,}.", param=name)
        return value
    return None


def cost_micros(prompt: int, completion: int, input_price: int, output_price: int) -> int:
    """The most a call of this size can cost (micro-USD, rounded up; prices are per 1M tokens)."""
    return math.ceil((prompt * input_price + completion * output_price) / 1_000_000)


@dataclass
class Reservation:
    """What one call holds from its quotas, and how much of its completion allowance the stream has used."""

    quotas: list[PeriodQuota]
    prompt_tokens: int
    completion_tokens: int  # reserved for the completion so far
    step: int  # how much more a stream reserves at a time
    input_price: int
    output_price: int
    reserved: dict[str, int] = field(default_factory=dict)  # by quota counter
    streamed: int = 0  # completion tokens counted as the stream passed

    def takes(self) -> list[Take]:
        amounts = self._amounts(self.prompt_tokens, self.completion_tokens, requests=1)
        for quota in self.quotas:
            self.reserved[quota.counter] = amounts[quota.metric]
        return [Take(quota, amounts[quota.metric], amounts[quota.metric]) for quota in self.quotas]

    def _amounts(self, prompt: int, completion: int, requests: int) -> dict[str, int]:
        return {
            "requests": requests,
            "tokens": prompt + completion,
            "cost": cost_micros(prompt, completion, self.input_price, self.output_price),
        }

    def growth(self, tokens: int) -> list[Take]:
        """What a stream must add to its reservation to pass ``tokens`` more completion tokens."""
        extra = {"tokens": tokens, "cost": cost_micros(0, tokens, self.input_price, self.output_price)}
        return [Take(q, extra[q.metric], extra[q.metric]) for q in self.quotas if q.metric in extra]

    def grew(self, takes: list[Take], tokens: int) -> None:
        self.completion_tokens += tokens
        for take in takes:
            counter = take.limit.counter
            self.reserved[counter] = self.reserved.get(counter, 0) + take.consume

    def settlements(self, *, answered: bool, prompt: int, completion: int, cost: int) -> list[Settlement]:
        used = {"requests": int(answered), "tokens": prompt + completion, "cost": cost}
        return [
            Settlement(quota, self.reserved[quota.counter], used[quota.metric])
            for quota in self.quotas
            if quota.counter in self.reserved
        ]


def reservation_for(
    policy: EffectivePolicy, body: dict[str, Any], targets: tuple[Target, ...], *, completes: bool
) -> Reservation | None:
    """The reservation a call must make, or None when no quota applies. ``completes``: the endpoint produces a
    completion (chat), as opposed to embeddings."""
    if not policy.quotas:
        return None
    asked = requested_max_tokens(body) if completes else None
    now = time.time()
    return Reservation(
        quotas=[quota.at(now) for quota in policy.quotas],
        prompt_tokens=prompt_tokens(body) if policy.spends else 0,
        completion_tokens=(asked or policy.max_tokens_default) if completes and policy.spends else 0,
        step=policy.max_tokens_default,
        input_price=max((t.input_price_micros_per_mtok for t in targets), default=0),
        output_price=max((t.output_price_micros_per_mtok for t in targets), default=0),
    )
