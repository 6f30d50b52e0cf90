"""`factory datasets`: import, list, show, diff, export and remove dataset versions."""

from __future__ import annotations

import json
from pathlib import Path

import click

from factory.cli._fmt import short, table, when
from factory.cli.convert import convert
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.group()
def datasets() -> None:
    """Import, inspect, compare, export and remove dataset versions.

    A REF is NAME (its latest version), NAME@VERSION (a unique prefix of the version is enough),
    or the path to a version directory.
    """


datasets.add_command(convert)


@datasets.command("import")
@click.argument("source")
@click.option("--name", "-n", required=True, help="Dataset name to store the rows under.")
@click.option("--map", "maps", multiple=True, metavar="NEW=OLD", help="Rename column OLD to NEW (repeatable).")
@click.option("--format", "fmt",
              type=click.Choice(["jsonl", "json", "csv", "tsv", "parquet", "text", "arrow-dir", "hub"]),
              help="Input format (default: from the file extension; a non-path is a Hub dataset id).")
@click.option("--split", default="train", show_default=True, help="Split, for Hub datasets and save_to_disk dirs.")
@click.option("--subset", help="Config (subset) name, for Hub datasets.")
@click.option("--require", help="Comma-separated columns the data must have (after --map).")
@pass_app
def import_(app: App, source: str, name: str, maps: tuple[str, ...], fmt: str | None, split: str,
            subset: str | None, require: str | None) -> None:
    """Import SOURCE as a new version of dataset NAME.

    SOURCE is a JSONL/JSON/CSV/TSV/Parquet file, a directory of Parquet files, a `datasets`
    save_to_disk directory, the word `seeds:NAME` for a seed set shipped with factory
    (dolly, flan, hh, topics), or a Hugging Face Hub dataset id (with --split/--subset).
    Importing the same content again gives the same version id and writes nothing.

    \b
    Examples:
      factory datasets import seeds:dolly --name dolly-seed
      factory datasets import data.csv --name mine --map instruction=question --map response=answer
      factory datasets import databricks/databricks-dolly-15k --name dolly
    """
    from factory.data import resolve_seed
    from factory.store import check_name
    from factory.store.importer import import_dataset
    from factory.store.sources import parse_map

    check_name(name)
    mapping = parse_map(maps)
    source = resolve_seed(source)
    needed = [c.strip() for c in require.split(",") if c.strip()] if require else None
    version, created = import_dataset(app.store, source, name, mapping, fmt, split, subset, needed)
    what = "imported" if created else "unchanged, already stored as"
    if app.verbosity >= 0:
        click.echo(f"{what} {version.ref} ({version.manifest.rows} rows)", err=True)
    click.echo(version.ref)


@datasets.command("list")
@click.option("--all", "show_all", is_flag=True, help="List every version, not only the latest of each name.")
@pass_app
def list_(app: App, show_all: bool) -> None:
    """List datasets: name, latest version, rows, producing stage, when."""
    store = app.store
    rows = []
    for name in store.names():
        versions = store.versions(name) if show_all else [store.latest(name)]
        for v in filter(None, versions):
            m = v.manifest
            rows.append([m.name, m.version, m.rows, m.stage.label(), len(store.versions(name)), when(m.created)])
    if not rows:
        click.echo(f"no datasets in {store.home} yet; try: factory datasets import seeds:dolly --name dolly-seed")
        return
    click.echo(table(["name", "version", "rows", "stage", "versions", "created"], rows))


@datasets.command()
@click.argument("ref")
@click.option("--rows", "-k", default=5, show_default=True, type=click.IntRange(min=0), help="How many rows to print.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@pass_app
def show(app: App, ref: str, rows: int, as_json: bool) -> None:
    """Show a version's manifest and its first rows."""
    v = app.store.resolve(ref)
    m = v.manifest
    if as_json:
        click.echo(m.dumps(), nl=False)
        return
    click.echo(f"{m.ref()}  {m.rows} rows  {m.stage.label()}  {when(m.created)}")
    if m.inputs:
        click.echo("inputs:   " + ", ".join(i.ref() for i in m.inputs))
    source = getattr(m, "source", None)
    if source:
        click.echo(f"source:   {source}")
    click.echo("columns:  " + ", ".join(f"{c} ({t})" for c, t in m.columns.items()))
    if m.counters:
        click.echo("counters: " + ", ".join(f"{k}={n}" for k, n in m.counters.items()))
    if m.cost.requests:
        c = m.cost
        click.echo(f"cost:     {c.requests} requests, {c.prompt_tokens}+{c.completion_tokens} tokens, ${c.usd:.4f}")
    click.echo(f"path:     {v.path}")
    if rows > 0:
        head = v.scan().head(min(rows, m.rows)).collect()  # polars takes no more than an int64
        click.echo("")
        for i, row in enumerate(head.iter_rows(named=True)):
            click.echo(f"[{i}]")
            for col, value in row.items():
                text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
                click.echo(f"  {col}: {short(text, 100)}")


@datasets.command()
@click.argument("old")
@click.argument("new")
@click.option("--key", help="Column that identifies a row (default: `id` when both have it); enables 'changed'.")
@pass_app
def diff(app: App, old: str, new: str, key: str | None) -> None:
    """Compare two versions: schema changes and rows added, removed and changed."""
    from factory.store.diff import diff_versions

    a, b = app.store.resolve(old), app.store.resolve(new)
    d = diff_versions(a.read(), b.read(), key)
    click.echo(f"{a.ref} -> {b.ref}")
    for col in d.columns_added:
        click.echo(f"+ column {col} ({d.types_new[col]})")
    for col in d.columns_removed:
        click.echo(f"- column {col} ({d.types_old[col]})")
    for col, (t_old, t_new) in d.types_changed.items():
        click.echo(f"~ column {col}: {t_old} -> {t_new}")
    keyed = f" (by {d.key})" if d.key else " (by whole-row content over shared columns)"
    click.echo(f"rows: {d.rows_old} -> {d.rows_new}{keyed}: +{d.added} added, -{d.removed} removed, "
               f"~{d.changed} changed, {d.unchanged} unchanged")


@datasets.command()
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "csv"]), default="jsonl", show_default=True)
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="File to write; - writes to stdout (a FIFO or device is written into, not replaced).")
@pass_app
def export(app: App, ref: str, fmt: str, out: Path) -> None:
    """Export a version to one JSONL, Parquet or CSV file (nested columns become JSON text in CSV)."""
    from factory.store.export import export_version

    v = app.store.resolve(ref)
    n = export_version(v, fmt, out)
    click.echo(f"wrote {n} rows of {v.ref} to {out}", err=True)


@datasets.command()
@click.argument("ref")
@click.option("--force", is_flag=True, help="Remove even if other versions were made from it.")
@click.option("--all", "every", is_flag=True, help="Remove every version of the dataset REF names.")
@pass_app
def rm(app: App, ref: str, force: bool, every: bool) -> None:
    """Remove a version (REF=NAME removes the latest). Refuses while later versions depend on it."""
    store = app.store
    target = store.resolve(ref)
    store.check_owned(target)
    victims = store.versions(target.name) if every else [target]
    if not force:  # check all first, so a refusal removes nothing
        doomed = {v.ref for v in victims}
        for v in victims:
            users = [u.ref for u in store.dependents(v) if u.ref not in doomed]
            if users:
                from factory.errors import FactoryError

                raise FactoryError(f"{v.ref} is an input of {', '.join(users)}; remove those first or pass --force")
    for v in victims:
        store.remove(v, force=True)
        click.echo(f"removed {v.ref}")
