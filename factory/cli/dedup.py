"""`factory dedup REF`: drop exact or near-duplicate rows into a new version."""

from __future__ import annotations

from pathlib import Path

import click

from factory.cli._executor import executor_options, executor_settings
from factory.cli._flags import model_options
from factory.cli._outcome import allow_empty_option, warn
from factory.cli.main import App
from factory.pipeline.dedup import NearConfig

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("ref")
@click.option("--near", is_flag=True, help="Also drop near duplicates (MinHash LSH over word shingles).")
@click.option("--semantic", is_flag=True, help="Also drop rows whose sentence embeddings are nearly the same.")
@click.option("--threshold", type=float,
              help="Near: estimated Jaccard similarity (default 0.8). Semantic: cosine similarity (default 0.92).")
@click.option("--embedding-model", metavar="PATH_OR_ID",
              help="Sentence-embedding model for --semantic (default: the installed all-MiniLM-L6-v2).")
@model_options(NearConfig, ["num_perm", "shingle"])
@click.option("--columns", help="Comma-separated columns to compare (default: instruction,input).")
@click.option("--name", "out_name", help="Output dataset name (default: REF's name + '-dedup').")
@allow_empty_option
@executor_options(
    executor='local: in this process; ray: --near\'s MinHash signing and candidate pairs on Ray Data (needs pip '
             'install "dataset-factory[scale]").',
    workers="CPUs of the local Ray it starts (not of a joined cluster); 4 x this many candidate-pair partitions "
            "(with --executor ray).",
    shard_rows="Rows per Ray Data block when signing (default: the rows split into 4 x --workers blocks).")
@pass_app
def dedup(app: App, ref: str, near: bool, semantic: bool, threshold: float | None, embedding_model: str | None,
          num_perm: int, shingle: int, columns: str | None, out_name: str | None, allow_empty: bool, **kw) -> None:
    """Drop duplicate rows of REF, keeping the first of each group, into a new version.

    Texts are compared after lower-casing and removing punctuation and extra spaces. Counters in the
    manifest say how many rows were exact and near duplicates.

    \b
    Examples:
      factory dedup evol-instruct
      factory dedup lamini --near --threshold 0.7
      factory dedup big --near --executor ray --ray-address HEAD:6379 --workers 16 --shard-rows 100000
      factory dedup orca --semantic --threshold 0.9
    """
    from factory.config import build_config
    from factory.errors import BadInput
    from factory.pipeline.dedup import DedupExact, DedupNear, DedupSemantic
    from factory.pipeline.execute import run_stage
    from factory.store import check_name

    store = app.store
    source = store.resolve(ref)
    out_name = check_name(out_name or f"{source.name}-dedup")
    if near and semantic:
        raise BadInput("choose one of --near and --semantic (run dedup twice for both)")
    values: dict = {"columns": [c.strip() for c in columns.split(",")] if columns else None}
    if near:
        cls = DedupNear
        values.update(num_perm=num_perm, shingle=shingle)
    elif semantic:
        cls = DedupSemantic
        if embedding_model:
            if embedding_model.startswith(("/", ".", "~")) and not Path(embedding_model).expanduser().exists():
                raise BadInput(f"--embedding-model {embedding_model}: no such folder")
            values["model"] = embedding_model
    else:
        cls = DedupExact
    if threshold is not None:
        if cls is DedupExact:
            raise BadInput("--threshold applies to --near or --semantic; exact dedup has none")
        values["threshold"] = threshold
    stage = cls(build_config(cls.Config, overrides=values))  # a `model` key would clash with the positional
    scale = executor_settings(kw)
    if scale["executor"] == "ray":
        if cls is not DedupNear:
            raise BadInput("--executor ray applies to --near (MinHash LSH on Ray Data); exact and semantic dedup "
                           "run locally")
        stage.ray = {"address": scale["ray_address"], "workers": scale["workers"], "block_rows": scale["batch_rows"]}
    result = run_stage(store, stage, None, source, out_name, allow_empty=allow_empty)
    version, created = result.version, not result.reused
    c = version.manifest.counters
    click.echo(f"{'stored' if created else 'unchanged:'} {version.ref}: kept {c['kept']}, dropped {c['dropped']}",
               err=True)
    warn(result)
    click.echo(version.ref)
