"""The options every command that calls an LLM takes, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

LLM_HELP = ("PROVIDER:MODEL (openai:gpt-4o, anthropic:claude-sonnet-4-5, hf:PATH_OR_ID, vllm:ID) or an alias "
            "(gpt4, gpt4o-mini, claude, local).")


# The run settings a command line sets; the rest of RunSettings (backoff, breaker) stay config-file territory.
RUN_FLAGS = ("concurrency", "rpm", "tpm", "budget_usd", "max_retries", "timeout_s", "schema_retries", "batch", "cache",
             "refresh")


def llm_run_options(f: Callable) -> Callable:
    """--concurrency, --rpm, --tpm, --budget, --max-retries, --timeout, --schema-retries, --batch, --no-cache,
    --refresh (from RunSettings), and --dry-run."""
    from factory.cli._flags import model_options
    from factory.llm.settings import RunSettings

    f = click.option("--dry-run", is_flag=True, help="Print what would be sent and the cost ceiling; send nothing.")(f)
    return model_options(RunSettings, RUN_FLAGS, flags={"budget_usd": "--budget", "timeout_s": "--timeout"},
                         metavars={"budget_usd": "USD"})(f)


def run_settings(kw: dict[str, Any], verbosity: int = 0) -> dict[str, Any]:
    """Pop the run options out of a command's kwargs, as keyword arguments for `load_llm`."""
    from factory.cli._flags import take
    from factory.llm.settings import RunSettings

    return {**take(RunSettings, kw, RUN_FLAGS), "progress": verbosity >= 0}


def preview_rows(source: Any, limit: int | None) -> list[dict[str, Any]]:
    """The rows a run over `source` would read: what `--dry-run` estimates from."""
    return (source.scan() if limit is None else source.scan().head(limit)).collect().to_dicts()


def print_estimate(llm: Any, requests: list) -> None:
    e = llm.estimate(requests)
    click.echo(f"dry run: {llm.spec}: {e['requests']} requests to send ({e['cached']} already cached), "
               f"~{e['prompt_tokens']:,} prompt tokens, up to {e['max_completion_tokens']:,} completion tokens, "
               f"{cost_line(e['max_usd'], e['max_usd_batch'], e['batch'])}")


def cost_line(online: float, batch: float, batched: bool) -> str:
    """`at most $2.0000 online, $1.0000 with --batch`: both prices side by side, the chosen one first."""
    if online != online:  # NaN: no price known
        return "cost unknown (no price for this model)"
    if batched:
        return f"at most ${batch:.4f} with --batch (${online:.4f} online)"
    return f"at most ${online:.4f} online, ${batch:.4f} with --batch"
