"""`--allow-empty`, the one-line warning of a stage that lost most of its rows, and the `skipped` note, for every
stage command."""

from __future__ import annotations

from collections.abc import Callable

import click


def allow_empty_option(f: Callable) -> Callable:
    return click.option("--allow-empty", is_flag=True,
                        help="Store the version even when no usable row came out (otherwise an error).")(f)


def skipped(counters: dict, lead: str = ", ") -> str:
    """`, 3 skipped (nothing to send)` for the summary line, when rows with an empty prompt were left out."""
    n = counters.get("skipped", 0)
    return f"{lead}{n} skipped (empty, not sent)" if n else ""


def warn(result) -> None:
    """Print the stage's warning (lost > 90 % of its rows, or stored empty), if any, on stderr."""
    if getattr(result, "warning", None):
        click.echo(result.warning, err=True)
