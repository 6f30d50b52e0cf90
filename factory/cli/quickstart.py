"""`factory quickstart`: the offline tour: seed data in, a LaMini dataset built by the embedded model,
deduplicated, looked at and traced. No network, no API key."""

from __future__ import annotations

import time

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)

SEEDS = {"dolly-seed": "dolly", "flan-seed": "flan", "topics": "topics", "hh-seed": "hh"}


@click.command()
@click.option("--llm", "llm_spec", default="local", show_default=True,
              help="Teacher model (the default is SmolLM2-135M-Instruct, shipped with factory).")
@click.option("--n", "n", type=click.IntRange(min=1), default=6, show_default=True, help="Rows to generate.")
@pass_app
def quickstart(app: App, llm_spec: str, n: int) -> None:
    """Run the offline quickstart: seeds in, `factory build lamini` with a local model, dedup, show, lineage.

    It takes a few minutes on a 2-core laptop (most of it the small model writing). Rerunning it is
    nearly free: every answer is cached and every unchanged step is reused.
    """
    from factory.cli._fmt import short
    from factory.data import seed_path
    from factory.llm import load_llm
    from factory.pipeline.dedup import DedupConfig, DedupExact
    from factory.pipeline.execute import run_stage
    from factory.schemes.lamini import LaMini, LaMiniConfig
    from factory.store.importer import import_dataset

    store = app.store
    started = time.monotonic()
    click.echo(f"factory home: {store.home}")
    click.echo("1. import the seed sets shipped with factory          (factory datasets import seeds:dolly ...)")
    for name, seed in SEEDS.items():
        version, created = import_dataset(store, str(seed_path(seed)), name)
        click.echo(f"   {version.ref:<28} {version.manifest.rows:>4} rows  ({'new' if created else 'already stored'})")
    click.echo(f"2. generate {n} instructions and answers with LaMini   "
               f"(factory build lamini --from dolly-seed --llm {llm_spec} --n {n})")
    stage = LaMini(LaMiniConfig(per_request=3, max_tokens=96, generate_max_tokens=128, temperature=0.0))
    llm = load_llm(llm_spec, home=store.home, progress=app.verbosity >= 0)
    built = run_stage(store, stage, llm, store.resolve("dolly-seed"), "lamini", max_rows=n).version
    c = built.manifest.counters
    click.echo(f"   {built.ref}: {c['kept']} rows ({c['failed']} failed), {built.manifest.cost.requests} requests")
    click.echo("3. drop exact duplicates                              (factory dedup lamini)")
    dedup = DedupExact(DedupConfig(columns=["instruction", "input"]))
    deduped = run_stage(store, dedup, None, built, "lamini-dedup").version
    click.echo(f"   {deduped.ref}: kept {deduped.manifest.counters['kept']}, "
               f"dropped {deduped.manifest.counters['dropped']}")
    click.echo("4. a look at the result                               (factory datasets show lamini-dedup)")
    for row in deduped.scan().head(3).collect().iter_rows(named=True):
        click.echo(f"   - {short(row['instruction'], 90)}")
        click.echo(f"     -> {short(row['response'] or row['error'], 90)}")
    click.echo("5. how it was made                                    (factory lineage lamini-dedup)")
    m = deduped.manifest
    click.echo(f"   {m.ref()} <- {m.stage.label()} <- {built.ref} <- {built.manifest.stage.label()} "
               f"with {llm.spec} <- {built.manifest.inputs[0].ref()}")
    click.echo(f"done in {time.monotonic() - started:.0f} s. Next: factory datasets list | factory lineage "
               "lamini-dedup | factory schemes list")
