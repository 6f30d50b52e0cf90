"""`factory filter REF`: drop rows by length, language and refusals into a new version."""

from __future__ import annotations

from typing import Any

import click

from factory.cli._flags import model_options, take
from factory.cli._outcome import allow_empty_option, warn
from factory.cli.main import App
from factory.pipeline.filters import FilterConfig

pass_app = click.make_pass_decorator(App)


@click.command(name="filter")
@click.argument("ref")
@model_options(FilterConfig, flags={"languages": "--language", "refusals": "--no-refusals"},
               metavars={"languages": "CODE"})
@click.option("--name", "out_name", help="Output dataset name (default: REF's name + '-filtered').")
@allow_empty_option
@pass_app
def filter_(app: App, ref: str, out_name: str | None, **kw: Any) -> None:
    """Drop rows of REF by length, language or refusal into a new version (rows with a failed call too).

    Each reason is counted in the manifest.

    \b
    Example:
      factory filter evol-instruct --min-words 5 --language en --no-refusals
    """
    from factory.config import build_config
    from factory.pipeline.execute import run_stage
    from factory.pipeline.filters import Filter
    from factory.store import check_name

    store = app.store
    source = store.resolve(ref)
    out_name = check_name(out_name or f"{source.name}-filtered")
    config = build_config(FilterConfig, **take(FilterConfig, kw))
    result = run_stage(store, Filter(config), None, source, out_name,
                       allow_empty=kw.pop("allow_empty"))
    version, created = result.version, not result.reused
    c = version.manifest.counters
    click.echo(f"{'stored' if created else 'unchanged:'} {version.ref}: kept {c['kept']}, dropped {c['dropped']}",
               err=True)
    warn(result)
    click.echo(version.ref)
