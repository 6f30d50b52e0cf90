"""The options every command that calls an LLM takes, defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

LLM_HELP = ("PROVIDER:MODEL (openai:gpt-4o, anthropic:claude-sonnet-4-5, hf:PATH_OR_ID, vllm:ID) or an alias "
            "(gpt4, gpt4o-mini, claude, local).")


def llm_run_options(f: Callable) -> Callable:
    """--concurrency, --rpm, --tpm, --budget, --max-retries, --schema-retries, --timeout, --no-cache, --refresh,
    --dry-run."""
    options = [
        click.option("--concurrency", type=click.IntRange(min=1), default=64, show_default=True,
                     help="LLM calls in flight at once."),
        click.option("--rpm", type=click.FloatRange(min=0, min_open=True), help="Cap on requests per minute."),
        click.option("--tpm", type=click.FloatRange(min=0, min_open=True), help="Cap on tokens per minute."),
        click.option("--budget", type=click.FloatRange(min=0, min_open=True), metavar="USD",
                     help="Hard cap on dollars spent in this run; stops cleanly before exceeding it."),
        click.option("--max-retries", type=click.IntRange(min=0), default=8, show_default=True,
                     help="Retries of a call on 429, 5xx, timeouts and dropped connections."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=120.0,
                     show_default=True, help="Seconds before a call times out."),
        click.option("--schema-retries", type=click.IntRange(min=0), default=2, show_default=True,
                     help="New tries of a reply that does not match its --schema, before the row fails."),
        click.option("--batch", is_flag=True,
                     help="Use the provider's batch API (openai:, anthropic:): half the price, results within 24 h; "
                          "a rerun resumes polling the batches it submitted."),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache."),
        click.option("--refresh", is_flag=True, help="Ask again even where an answer is cached (new samples)."),
        click.option("--dry-run", is_flag=True, help="Print what would be sent and the cost ceiling; send nothing."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def run_settings(kw: dict[str, Any], verbosity: int = 0) -> dict[str, Any]:
    """Pop the run options out of a command's kwargs, as keyword arguments for `load_llm`."""
    return {
        "concurrency": kw.pop("concurrency"), "rpm": kw.pop("rpm"), "tpm": kw.pop("tpm"),
        "budget_usd": kw.pop("budget"), "max_retries": kw.pop("max_retries"),
        "schema_retries": kw.pop("schema_retries"), "timeout_s": kw.pop("timeout_s"),
        "batch": kw.pop("batch"), "cache": not kw.pop("no_cache"), "refresh": kw.pop("refresh"),
        "progress": verbosity >= 0,
    }


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
