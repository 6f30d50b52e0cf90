"""`factory dedup REF`: drop exact or near-duplicate rows into a new version."""

from __future__ import annotations

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("ref")
@click.option("--near", is_flag=True, help="Also drop near duplicates (MinHash LSH over word shingles).")
@click.option("--threshold", type=float, default=0.8, show_default=True,
              help="Estimated Jaccard similarity at which two rows are near duplicates.")
@click.option("--num-perm", type=click.IntRange(min=8), default=128, show_default=True, help="MinHash permutations.")
@click.option("--shingle", type=click.IntRange(min=1), default=3, show_default=True, help="Words per shingle.")
@click.option("--columns", help="Comma-separated columns to compare (default: instruction,input).")
@click.option("--name", "out_name", help="Output dataset name (default: REF's name + '-dedup').")
@pass_app
def dedup(app: App, ref: str, near: bool, threshold: float, num_perm: int, shingle: int, columns: str | None,
          out_name: str | None) -> None:
    """Drop duplicate rows of REF, keeping the first of each group, into a new version.

    Texts are compared after lower-casing and removing punctuation and extra spaces. Counters in the
    manifest say how many rows were exact and near duplicates.

    \b
    Examples:
      factory dedup evol-instruct
      factory dedup lamini --near --threshold 0.7
    """
    from factory.pipeline.dedup import EXACT, NEAR, dedup_exact, dedup_near, default_columns
    from factory.pipeline.transform import run_transform
    from factory.store import check_name

    store = app.store
    source = store.resolve(ref)
    cols = [c.strip() for c in columns.split(",")] if columns else default_columns(list(source.manifest.columns))
    out_name = check_name(out_name or f"{source.name}-dedup")
    if near:
        config = {"columns": cols, "threshold": threshold, "num_perm": num_perm, "shingle": shingle}
        version, created = run_transform(store, source, out_name, NEAR, config,
                                         lambda df: dedup_near(df, cols, threshold, num_perm, shingle))
    else:
        version, created = run_transform(store, source, out_name, EXACT, {"columns": cols},
                                         lambda df: dedup_exact(df, cols))
    c = version.manifest.counters
    click.echo(f"{'stored' if created else 'unchanged:'} {version.ref}: kept {c['kept']}, dropped {c['dropped']}",
               err=True)
    click.echo(version.ref)
