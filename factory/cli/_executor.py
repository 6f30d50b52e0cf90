"""`--executor local|ray`, `--ray-address`, `--workers`, `--shard-rows`: where a row-batch LLM stage's jobs run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def executor_options(f: Callable) -> Callable:
    options = [
        click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="local: asyncio in this process; ray: shards on Ray Data actors (resumable per shard; "
                          'needs pip install "dataset-factory[scale]").'),
        click.option("--ray-address", envvar="RAY_ADDRESS", metavar="ADDRESS",
                     help="Join this Ray cluster (default: $RAY_ADDRESS; without: a local Ray, started and stopped)."),
        click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
                     help="Ray actors, each with its own LLM client or engine (with --executor ray)."),
        click.option("--shard-rows", type=click.IntRange(min=1), metavar="N",
                     help="Input rows per job (per shard with --executor ray); default: 8 x --concurrency, >= 512."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def executor_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the executor options out of a command's kwargs, as keyword arguments for `run_stage`."""
    return {"executor": kw.pop("executor"), "ray_address": kw.pop("ray_address"), "workers": kw.pop("workers"),
            "batch_rows": kw.pop("shard_rows")}
