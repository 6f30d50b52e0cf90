"""The run settings of an LLM (concurrency, rate limits, retries, budget, cache): one pydantic model.

The CLI's `--concurrency`, `--rpm`, ... flags are generated from these fields (factory/cli/_llm_options.py),
so each default, range and help text is written here once. Light on purpose: `factory judge --help`
imports it.
"""

from __future__ import annotations

from pydantic import Field

from factory.config import StrictModel


class RunSettings(StrictModel):
    concurrency: int = Field(64, ge=1, description="LLM calls in flight at once.")
    rpm: float | None = Field(None, gt=0, description="Cap on requests per minute.")
    tpm: float | None = Field(None, gt=0, description="Cap on tokens per minute.")
    budget_usd: float | None = Field(
        None, gt=0, description="Hard cap on dollars spent in this run; stops cleanly before exceeding it.")
    max_retries: int = Field(8, ge=0, description="Retries of a call on 429, 5xx, timeouts and dropped connections.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds before a call times out.")
    schema_retries: int = Field(
        2, ge=0, description="New tries of a reply that does not match its --schema, before the row fails.")
    batch: bool = Field(False, description="Use the provider's batch API (openai:, anthropic:): half the price, "
                                           "results within 24 h; a rerun resumes polling the batches it submitted.")
    cache: bool = Field(True, description="Read and write the response cache.",
                        json_schema_extra={"flag_help": "Neither read nor write the response cache."})
    refresh: bool = Field(False, description="Ask again even where an answer is cached (new samples).")
    progress: bool = True
    backoff_base_s: float = 0.5
    backoff_max_s: float = 60.0
    breaker_window: int = Field(50, ge=5)
    breaker_failure_rate: float = Field(0.8, gt=0, le=1)
    batch_size: int = Field(16, ge=1, description="rows per batch for local providers")
    batch_retries: int = Field(2, ge=0, description="follow-up batches for requests that expired or failed")
