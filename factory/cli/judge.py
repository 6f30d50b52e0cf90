"""`factory judge REF --with LLM`: score a dataset's rows with an LLM judge and keep those above a threshold."""

from __future__ import annotations

from typing import Any

import click

from factory.cli._llm_options import LLM_HELP, llm_run_options, preview_rows, print_estimate, run_settings
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("ref")
@click.option("--with", "judge_spec", required=True, metavar="JUDGE_LLM", help=f"The judge. {LLM_HELP}")
@click.option("--rubric", default="quality", show_default=True,
              help="Which judge rubric: quality, helpfulness, mt-bench-single, mt-bench-pair, ... "
                   "(`factory judges list`).")
@click.option("--min-score", type=float, help="Keep rows scoring at least this (default: the rubric's threshold).")
@click.option("--keep-all", is_flag=True, help="Keep every row with its score instead of filtering.")
@click.option("--repeats", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Judge each row K times; the score is the mean, and spread and agreement are reported.")
@click.option("--name", "out_name", help="Output dataset name (default: REF's name + '-judged').")
@click.option("--n", "limit", type=click.IntRange(min=1), help="Judge only the first N rows.")
@click.option("--temperature", type=click.FloatRange(min=0), help="Judge temperature (default 0; 0.7 with --repeats).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Longest judge reply.")
@click.option("--structured/--no-structured", default=None,
              help="Ask for a JSON verdict by schema (default: where the provider supports it).")
@click.option("--scoring", type=click.Choice(["auto", "verdict", "logprobs"]), default="auto", show_default=True,
              help="verdict: parse a written score; logprobs: the expectation over the score tokens' probabilities "
                   "(G-Eval), for hf: judges and OpenAI-compatible APIs returning logprobs; auto: logprobs for hf:.")
@llm_run_options
@pass_app
def judge(app: App, ref: str, judge_spec: str, rubric: str, min_score: float | None, keep_all: bool, repeats: int,
          out_name: str | None, limit: int | None, temperature: float | None, max_tokens: int,
          structured: bool | None, scoring: str, dry_run: bool, **kw: Any) -> None:
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
    from factory.errors import BadInput
    from factory.judges import JUDGES
    from factory.judges.rubric import JudgeConfig
    from factory.llm import load_llm
    from factory.pipeline.execute import run_stage
    from factory.store import check_name

    store = app.store
    if rubric not in JUDGES:
        raise BadInput(f"unknown rubric {rubric!r} (known: {', '.join(JUDGES.names())})")
    source = store.resolve(ref)
    out_name = check_name(out_name or f"{source.name}-judged")
    stage = JUDGES.get(rubric)(JudgeConfig(min_score=min_score, keep_all=keep_all, repeats=repeats,
                                           temperature=temperature, max_tokens=max_tokens, structured=structured,
                                           scoring=scoring))
    stage.check_inputs(list(source.manifest.columns), source.ref)
    llm = load_llm(judge_spec, home=store.home, **run_settings(kw, app.verbosity))
    if dry_run:
        stage.prepare(llm)
        print_estimate(llm, [r for row in preview_rows(source, limit) if stage.missing(row) is None
                             for r in stage.requests(row, bool(stage.structured))])
        return
    result = run_stage(store, stage, llm, source, out_name, limit=limit)
    m = result.version.manifest
    if result.reused:
        click.echo(f"unchanged: {m.ref()} already holds these judgements", err=True)
    else:
        c = m.counters
        click.echo(f"stored {m.ref()}: kept {c.get('kept', 0)}, dropped {c.get('dropped', 0)}, "
                   f"failed {c.get('failed', 0)}; {m.cost.prompt_tokens + m.cost.completion_tokens:,} tokens, "
                   f"${m.cost.usd:.4f}", err=True)
    click.echo(summary(getattr(m, "judge", None) or {}), err=True)
    if m.counters.get("failed"):
        where = "kept with `judge_error`" if keep_all else "left out"
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
