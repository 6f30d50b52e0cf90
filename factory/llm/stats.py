"""What an LLM run counts, and how it ends when it cannot go on: `RunStats`, `RunAborted`, `BudgetExhausted`.

Also the two small judgements every path of the runner shares: a cheap prompt-size estimate for rate limits,
and what counts as an empty reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from factory.errors import FactoryError
from factory.llm.types import ChatRequest, Completion
from factory.records import Cost


class BudgetExhausted(FactoryError):
    pass


class RunAborted(FactoryError):
    pass


@dataclass
class RunStats:
    sent: int = 0  # HTTP calls made, retries included
    answered: int = 0  # new answers
    cached: int = 0  # answers taken from the cache
    shared: int = 0  # rows answered by an identical request of another row in this run: no call, no cost
    failed: int = 0  # rows yielded with an error
    retries: int = 0
    invalid: int = 0  # replies that broke their schema (each retried or failed)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0  # spent in this run
    cached_usd: float = 0.0  # what the cached answers cost when they were bought
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    batches_submitted: int = 0
    batches_resumed: int = 0  # batches of an earlier run polled again instead of resubmitted
    batches_done: int = 0
    batch_status: dict = field(default_factory=dict)  # batch id -> its latest `BatchState`

    def cost(self) -> Cost:
        """What the answers of this run cost in all, including answers bought by an earlier, interrupted run."""
        return Cost(requests=self.answered + self.cached,
                    prompt_tokens=self.prompt_tokens + self.cached_prompt_tokens,
                    completion_tokens=self.completion_tokens + self.cached_completion_tokens,
                    usd=round(self.usd + self.cached_usd, 6))


def approx_tokens(request: ChatRequest) -> int:
    """A cheap upper-ish estimate of prompt tokens (4 characters a token), for limits and budgets."""
    chars = sum(len(m.get("content") or "") for m in request.messages) + len(request.system or "")
    return chars // 4 + 4 * (len(request.messages) + 1)


def empty_reply(c: Completion) -> str | None:
    """Why a reply counts as empty (no choices, `null` or blank text), or None."""
    if not c.texts:
        return "empty reply: the API returned no choices"
    if any(t is None or not str(t).strip() for t in c.texts):
        return "empty reply: the model returned no text"
    return None
