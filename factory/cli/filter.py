"""`factory filter REF`: drop rows by length, language and refusals into a new version."""

from __future__ import annotations

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command(name="filter")
@click.argument("ref")
@click.option("--column", default="response", show_default=True, help="The text column the filters look at.")
@click.option("--min-words", type=click.IntRange(min=0), help="Drop rows with fewer words.")
@click.option("--max-words", type=click.IntRange(min=1), help="Drop rows with more words.")
@click.option("--language", "languages", multiple=True, metavar="CODE",
              help="Keep only rows in this language (en, fr, es, de, it, pt; repeatable).")
@click.option("--no-refusals", "refusals", is_flag=True, help="Drop answers where the model declines or hedges.")
@click.option("--name", "out_name", help="Output dataset name (default: REF's name + '-filtered').")
@pass_app
def filter_(app: App, ref: str, column: str, min_words: int | None, max_words: int | None,
            languages: tuple[str, ...], refusals: bool, out_name: str | None) -> None:
    """Drop rows of REF by length, language or refusal into a new version (rows with a failed call too).

    Each reason is counted in the manifest.

    \b
    Example:
      factory filter evol-instruct --min-words 5 --language en --no-refusals
    """
    from factory.config import build_config
    from factory.pipeline.execute import run_stage
    from factory.pipeline.filters import Filter, FilterConfig
    from factory.store import check_name

    store = app.store
    source = store.resolve(ref)
    out_name = check_name(out_name or f"{source.name}-filtered")
    config = build_config(FilterConfig, column=column, min_words=min_words, max_words=max_words,
                          languages=list(languages), refusals=refusals)
    result = run_stage(store, Filter(config), None, source, out_name)
    version, created = result.version, not result.reused
    c = version.manifest.counters
    click.echo(f"{'stored' if created else 'unchanged:'} {version.ref}: kept {c['kept']}, dropped {c['dropped']}",
               err=True)
    click.echo(version.ref)
