"""`factory judge REF --with LLM`: score a dataset's rows with an LLM judge and keep those above a threshold."""

from __future__ import annotations

from typing import Any

import click

from factory.cli._executor import executor_options, executor_settings
from factory.cli._flags import ROWS, given, model_options, take
from factory.cli._llm_options import LLM_HELP, llm_run_options, preview_rows, print_estimate, run_settings
from factory.cli._outcome import allow_empty_option, skipped, warn
from factory.cli.main import App
from factory.judges.rubric import JudgeConfig

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("ref")
@click.option("--with", "judge_spec", required=True, metavar="JUDGE_LLM", help=f"The judge. {LLM_HELP}")
@click.option("--rubric", default="quality", show_default=True,
              help="Which judge rubric: quality, helpfulness, mt-bench-single, mt-bench-pair, ... "
                   "(`factory judges list`).")
@model_options(JudgeConfig, flags={"response_schema": "--schema"},
               metavars={"response_schema": "MODULE:CLASS|FILE.json"})
@click.option("--name", "out_name", help="Output dataset name (default: REF's name + '-judged').")
@click.option("--n", "limit", type=ROWS, help="Judge only the first N rows.")
@click.option("--config", "-c", "config_file", type=click.Path(dir_okay=False),
              help="YAML file of judge options (the keys of the options above, e.g. repeats: 3).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set one judge option, e.g. min_score=8 (repeatable; flags win over --set, --set over --config).")
@llm_run_options
@executor_options
@allow_empty_option
@pass_app
def judge(app: App, ref: str, judge_spec: str, rubric: str, out_name: str | None, limit: int | None,
          config_file: str | None, sets: tuple[str, ...], dry_run: bool, **kw: Any) -> None:
    """Score every row of REF with a judge LLM and store the scored rows as a new dataset version.

    Adds `judge_score` (null when the judge failed), `judge_rationale`, `judge_probs` (logprob scoring),
    `judge_model` and `judge_error`. By default only rows scoring at least the threshold are kept (rows the
    judge failed on are left out, and kept with `judge_error` under --keep-all); the manifest counts
    kept/dropped/failed rows and records the judge, the rubric, the scoring and reliability statistics.
    Judge replies are cached: a rerun asks again only for the rows that failed.

    \b
    Examples:
      factory judge evol-instruct --with gpt4 --min-score 7
      factory judge answers --with claude --rubric helpfulness --keep-all --repeats 3
      factory judge pairs --with gpt4o --rubric mt-bench-pair
    """
    from factory.config import build_config
    from factory.errors import BadInput
    from factory.judges import JUDGES
    from factory.llm import load_llm
    from factory.pipeline.execute import run_stage
    from factory.pipeline.outcome import require_rows
    from factory.store import check_name

    store = app.store
    if rubric not in JUDGES:
        raise BadInput(f"unknown rubric {rubric!r} (known: {', '.join(JUDGES.names())})")
    source = store.resolve(ref)
    out_name = check_name(out_name or f"{source.name}-judged")
    config = build_config(JudgeConfig, config_file, sets, overrides=given(take(JudgeConfig, kw)))
    stage = JUDGES.get(rubric)(config)
    require_rows(source)  # "X has no rows", not "X lacks columns"
    stage.check_inputs(list(source.manifest.columns), source.ref)
    stage.check_types(source.scan().collect_schema(), source.ref)
    scale = executor_settings(kw)
    llm = load_llm(judge_spec, home=store.home, **run_settings(kw, app.verbosity))
    if dry_run:
        stage.prepare(llm)
        print_estimate(llm, [r for row in preview_rows(source, limit) if stage.missing(row) is None
                             for r in stage.requests(row, bool(stage.structured))])
        return
    result = run_stage(store, stage, llm, source, out_name, limit=limit,
                       allow_empty=kw.pop("allow_empty"), **scale)
    m = result.version.manifest
    if result.reused:
        click.echo(f"unchanged: {m.ref()} already holds these judgements", err=True)
    else:
        c = m.counters
        click.echo(f"stored {m.ref()}: kept {c.get('kept', 0)}, dropped {c.get('dropped', 0)}, "
                   f"failed {c.get('failed', 0)}{skipped(c)}; "
                   f"{m.cost.prompt_tokens + m.cost.completion_tokens:,} tokens, "
                   f"${m.cost.usd:.4f}", err=True)
    click.echo(summary(getattr(m, "judge", None) or {}), err=True)
    warn(result)
    if m.counters.get("failed"):
        where = "kept with `judge_error`" if config.keep_all else "left out"
        click.echo(f"{m.counters['failed']} rows the judge failed on are {where}, counted failed; rerunning the "
                   "same command asks the judge again for just those rows", err=True)
    click.echo(m.ref())


def summary(judge: dict[str, Any]) -> str:
    """One line of what the manifest says about the judge's reliability."""
    stats = judge.get("stats") or {}
    rubric = judge.get("rubric") or {}
    parts = [f"judge {judge.get('model')} with rubric {rubric.get('name')}@{rubric.get('version')}"
             + (" scored by token probabilities" if judge.get("scoring") == "logprobs" else "")]
    if "mean" in stats:
        parts.append(f"mean score {stats['mean']:g} (std {stats['std']:g})")
    if "agreement" in stats:
        parts.append(f"{stats['repeats']} repeats: spread {stats['spread']:g}, agreement {stats['agreement']:.0%}")
    if stats.get("consistency_rate") is not None:
        parts.append(f"position-swap consistency {stats['consistency_rate']:.0%} "
                     f"({stats['inconsistent']} inconsistent, counted as ties)")
    return "; ".join(parts)
