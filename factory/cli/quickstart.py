"""`factory quickstart`: the offline tour: seed data in, looked at, traced, exported."""

from __future__ import annotations

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)

SEEDS = {"dolly-seed": "dolly", "flan-seed": "flan", "topics": "topics", "hh-seed": "hh"}


@click.command()
@pass_app
def quickstart(app: App) -> None:
    """Run the offline quickstart: import the shipped seed sets and show what the store holds.

    Nothing here needs a network or an API key. It is safe to rerun: imports of unchanged data are no-ops.
    """
    from factory.cli._fmt import short
    from factory.data import seed_path
    from factory.store.importer import import_dataset

    store = app.store
    click.echo(f"factory home: {store.home}")
    click.echo("1. import the seed sets shipped with factory")
    for name, seed in SEEDS.items():
        version, created = import_dataset(store, str(seed_path(seed)), name)
        state = "new" if created else "already stored"
        click.echo(f"   {version.ref:<28} {version.manifest.rows:>4} rows  ({state})")
    dolly = store.resolve("dolly-seed")
    click.echo("2. a look at dolly-seed (`factory datasets show dolly-seed`)")
    by_category = dolly.read().group_by("category").len().sort("category")
    click.echo("   categories: " + ", ".join(f"{c}={n}" for c, n in by_category.iter_rows()))
    for row in dolly.scan().head(2).collect().iter_rows(named=True):
        click.echo(f"   - [{row['category']}] {short(row['instruction'], 70)}")
        click.echo(f"     -> {short(row['response'], 70)}")
    click.echo("3. every version records how it was made (`factory lineage dolly-seed`)")
    m = dolly.manifest
    click.echo(f"   {m.ref()}: stage {m.stage.label()}, {m.rows} rows, columns {', '.join(m.columns)}")
    click.echo("next: factory datasets list | factory datasets show dolly-seed | factory schemes list")
