"""`--executor local|ray`, `--ray-address`, `--workers`, `--shard-rows`: where a row-batch LLM stage's jobs run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

LLM_HELP = {
    "executor": "local: asyncio in this process; ray: shards on Ray Data actors (resumable per shard; "
                'needs pip install "dataset-factory[scale]").',
    "workers": "Ray actors, each with its own LLM client or engine (with --executor ray).",
    "shard_rows": "Input rows per job (per shard with --executor ray); default: 8 x --concurrency, >= 512.",
}


def executor_options(f: Callable | None = None, **helps: str) -> Callable:
    """The four options, with the help of a row-batch LLM stage unless `helps` (keyed like LLM_HELP) says
    otherwise: `@executor_options` or `@executor_options(workers="...")`."""
    text = {**LLM_HELP, **helps}

    def decorate(f: Callable) -> Callable:
        options = [
            click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                         help=text["executor"]),
            click.option("--ray-address", envvar="RAY_ADDRESS", metavar="ADDRESS",
                         help="Join this Ray cluster (default: $RAY_ADDRESS; without: a local Ray, started and "
                              "stopped)."),
            click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
                         help=text["workers"]),
            click.option("--shard-rows", type=click.IntRange(min=1), metavar="N", help=text["shard_rows"]),
        ]
        for option in reversed(options):
            f = option(f)
        return f

    return decorate(f) if f is not None else decorate


def executor_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the executor options out of a command's kwargs, as keyword arguments for `run_stage`."""
    return {"executor": kw.pop("executor"), "ray_address": kw.pop("ray_address"), "workers": kw.pop("workers"),
            "batch_rows": kw.pop("shard_rows")}
