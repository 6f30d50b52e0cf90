"""`factory build SCHEME --from SEED_REF --llm SPEC`: generate an instruction dataset with a scheme."""

from __future__ import annotations

import click

from factory.cli._executor import executor_options, executor_settings
from factory.cli._flags import given, model_options, take
from factory.cli._llm_options import LLM_HELP, cost_line, llm_run_options, run_settings
from factory.cli._outcome import allow_empty_option, skipped, warn
from factory.cli.main import App
from factory.schemes.base import SchemeConfig

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("scheme")
@click.option("--from", "from_ref", required=True, metavar="SEED_REF",
              help="Seed dataset: NAME, NAME@VERSION, a version dir, or a file to import first.")
@click.option("--llm", "llm_spec", default="local", show_default=True, help=f"Teacher model: {LLM_HELP}")
@click.option("--n", "n", type=int, help="How many rows to generate (at most); default: one pass over the seeds.")
@click.option("--name", "out_name", help="Output dataset name (default: the scheme's name).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML file of scheme options.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set one scheme option (repeatable).")
@model_options(SchemeConfig, ["seed"])
@llm_run_options
@executor_options
@allow_empty_option
@pass_app
def build(app: App, scheme: str, from_ref: str, llm_spec: str, n: int | None, out_name: str | None,
          config_file: str | None, sets: tuple[str, ...], dry_run: bool, **kw) -> None:
    """Generate instruction data from seed rows with a teacher LLM and a generation SCHEME.

    Schemes: `factory schemes list`; their options: `factory schemes inspect SCHEME`. Answers are cached
    as they arrive, so an interrupted build resumes where it stopped and a repeated one costs nothing.

    \b
    Examples:
      factory build evol-instruct --from dolly-seed --llm local --n 8 --set rounds=2
      factory build lamini --from dolly-seed --llm gpt4o-mini --n 1000 --budget 5
      factory build orca --from flan-seed --llm openai:gpt-4o --n 500
    """
    from factory.config import build_config
    from factory.errors import BadInput
    from factory.llm import load_llm
    from factory.pipeline.execute import run_stage
    from factory.pipeline.outcome import require_rows
    from factory.schemes import SCHEMES
    from factory.store import check_name

    cls = SCHEMES.get(scheme)
    if n is not None and n <= 0:
        raise BadInput(f"--n must be a positive number of rows, got {n}")
    stage = cls(build_config(cls.Config, config_file, sets, overrides=given(take(SchemeConfig, kw, ["seed"]))))
    store = app.store
    source = _seeds(store, from_ref)
    require_rows(source)  # "X has no rows", not "X lacks columns"
    stage.check_inputs(list(source.manifest.columns), f"seed data {source.ref}")
    stage.check_types(source.scan().collect_schema(), source.ref)
    out_name = check_name(out_name or cls.name)
    scale = executor_settings(kw)
    llm = load_llm(llm_spec, home=store.home, **run_settings(kw, app.verbosity))
    if dry_run:
        jobs = sum(1 for batch in stage.jobs(source, None, 512, n) for row in batch if stage.blank(row) is None)
        calls, tokens = stage.budget_per_job()
        price = llm.price
        usd = "unknown (no price for this model)" if price is None else \
            cost_line(price.cost(0, int(jobs * tokens)), price.batch().cost(0, int(jobs * tokens)),
                      llm.settings.batch) + " for completions, plus prompts"
        click.echo(f"dry run: {cls.name} {cls.version} from {source.ref} into {out_name} with {llm.spec}: "
                   f"{jobs} jobs, up to {int(jobs * calls):,} requests and {int(jobs * tokens):,} completion "
                   f"tokens; {usd}")
        return
    result = run_stage(store, stage, llm, source, out_name, max_rows=n,
                       allow_empty=kw.pop("allow_empty"), **scale)
    m = result.version.manifest
    if result.reused:
        click.echo(f"unchanged: {m.ref()} was already built with this recipe", err=True)
    else:
        c = m.counters
        click.echo(f"built {m.ref()}: {c.get('kept', 0)} rows ({c.get('failed', 0)} failed, "
                   f"{c.get('dropped', 0)} dropped{skipped(c)}), {m.cost.requests} requests, ${m.cost.usd:.4f}",
                   err=True)
    warn(result)
    click.echo(m.ref())


def _seeds(store, ref: str):
    """A stored version, or a file imported on the fly (so lineage starts at the file's content)."""
    from factory.store.importer import resolve_or_import

    return resolve_or_import(store, ref)
