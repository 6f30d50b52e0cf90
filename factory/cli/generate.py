"""`factory generate REF --llm SPEC`: have a model answer every instruction of a dataset."""

from __future__ import annotations

import click

from factory.cli._executor import executor_options, executor_settings
from factory.cli._flags import ROWS, model_options, take
from factory.cli._llm_options import LLM_HELP, llm_run_options, preview_rows, print_estimate, run_settings
from factory.cli._outcome import allow_empty_option, skipped, warn
from factory.cli.main import App
from factory.pipeline.respond import RespondConfig

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("ref")
@click.option("--llm", "llm_spec", default="local", show_default=True, help=LLM_HELP)
@click.option("--name", "out_name", help="Output dataset name (default: REF's name + '-answers').")
@click.option("--n", "limit", type=ROWS, help="Answer only the first N rows.")
@model_options(RespondConfig, flags={"response_schema": "--schema"},
               metavars={"response_schema": "MODULE:CLASS|FILE.json"})
@llm_run_options
@executor_options
@allow_empty_option
@pass_app
def generate(app: App, ref: str, llm_spec: str, out_name: str | None, limit: int | None, dry_run: bool, **kw) -> None:
    """Answer every row of REF with an LLM and store the answers as a new dataset version.

    Rows need `instruction` (with optional `input`/`context`) or `messages`; the answer goes to `response`
    and `messages` gets the full conversation. Answers are cached as they arrive: an interrupted run
    picks up where it stopped, paying only for rows not answered yet.

    \b
    Examples:
      factory generate dolly-seed --llm local --n 20
      factory generate dolly-seed --llm gpt4o-mini --budget 2 --concurrency 128
      factory generate dolly-seed --llm gpt4o-mini --schema mypkg.models:Answer
    """
    from factory.config import build_config
    from factory.llm import load_llm
    from factory.pipeline.execute import run_stage
    from factory.pipeline.outcome import require_rows
    from factory.pipeline.respond import Respond
    from factory.store import check_name

    store = app.store
    source = store.resolve(ref)
    out_name = check_name(out_name or f"{source.name}-answers")
    stage = Respond(build_config(RespondConfig, **take(RespondConfig, kw)))
    require_rows(source)  # "X has no rows", not "X lacks columns"
    stage.check_inputs(list(source.manifest.columns), source.ref)
    stage.check_types(source.scan().collect_schema(), source.ref)
    scale = executor_settings(kw)
    llm = load_llm(llm_spec, home=store.home, **run_settings(kw, app.verbosity))
    if dry_run:
        print_estimate(llm, [stage.request(r) for r in preview_rows(source, limit) if stage.blank(r) is None])
        return
    result = run_stage(store, stage, llm, source, out_name, limit=limit,
                       allow_empty=kw.pop("allow_empty"), **scale)
    m = result.version.manifest
    if result.reused:
        click.echo(f"unchanged: {m.ref()} already holds these answers", err=True)
    else:
        c = m.counters
        click.echo(f"stored {m.ref()}: {c.get('kept', 0)} rows, {c.get('failed', 0)} failed{skipped(c)}, "
                   f"{m.cost.prompt_tokens + m.cost.completion_tokens:,} tokens, ${m.cost.usd:.4f}", err=True)
        if c.get("failed"):
            click.echo("rerun the same command to retry the failed rows", err=True)
    warn(result)
    click.echo(m.ref())
