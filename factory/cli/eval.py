"""`factory eval`: evaluate a model; `factory eval mt-bench --model SPEC --judge SPEC` grades MT-Bench answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from factory.cli._flags import ROWS, FiniteFloat
from factory.cli._llm_options import LLM_HELP, llm_run_options, print_estimate, run_settings
from factory.cli.eval_lm import lm_eval_command
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.group(name="eval")
def eval_() -> None:
    """Evaluate a model: MT-Bench answers graded by an LLM judge; the LM Eval Harness (`lm-eval`)."""


eval_.add_command(lm_eval_command)


@eval_.command("mt-bench")
@click.option("--model", "model_spec", required=True,
              help=f"The model to evaluate: a checkpoint directory or an LLM spec. {LLM_HELP}")
@click.option("--judge", "judge_spec", required=True, help=f"The judge LLM. {LLM_HELP}")
@click.option("--questions", help="A question file (JSONL/JSON/Parquet with category, turns, optional question_id "
                                  "and reference) or a Hub dataset id (default: the 80 MT-Bench questions).")
@click.option("--n", "n", type=ROWS, help="Use N questions, spread evenly over the categories.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results JSON here (default: $FACTORY_HOME/evals/<name>.json).")
@click.option("--name", "prefix", help="Name prefix of the stored answers and judgments (default: mt-bench-MODEL).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Longest model answer per turn.")
@click.option("--temperature", type=FiniteFloat(min=0),
              help="Model temperature (default: MT-Bench's per category: 0.7 writing/roleplay, 0.1 stem/humanities, "
                   "0 for the rest).")
@click.option("--judge-max-tokens", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Longest judge reply.")
@llm_run_options
@pass_app
def mt_bench(app: App, model_spec: str, judge_spec: str, questions: str | None, n: int | None, out: Path | None,
             prefix: str | None, max_tokens: int, temperature: float | None, judge_max_tokens: int, dry_run: bool,
             **kw: Any) -> None:
    """Answer the MT-Bench questions with --model (two turns each) and grade every turn with --judge.

    Prints mean scores per category and turn and overall (1-10), and writes them as JSON for model cards.
    The questions, answers and judgments are stored as dataset versions: a rerun reuses them, and an
    interrupted run resumes. --budget caps the judge's spending.

    \b
    Examples:
      factory eval mt-bench --model ckpt/dpo --judge claude
      factory eval mt-bench --model hf:HuggingFaceTB/SmolLM2-135M-Instruct --judge gpt4 --n 16
    """
    from factory.cli._fmt import table
    from factory.eval.mt_bench import AnswerConfig, MTBenchAnswer, run, slug, summarize, table_rows
    from factory.eval.questions import store_questions
    from factory.judges.mt_bench import MTBenchSingle
    from factory.judges.rubric import JudgeConfig
    from factory.llm import has_batch_api, load_llm
    from factory.store import check_name

    store = app.store
    if Path(model_spec).is_dir():  # a checkpoint written by `factory train`
        model_spec = f"hf:{Path(model_spec).resolve()}"
    checkpoint = checkpoint_dir(model_spec)
    prefix = check_name(prefix or f"mt-bench-{slug(model_spec)}")
    source = questions or "bundled MT-Bench questions (FastChat, Apache-2.0)"
    asked = store_questions(store, questions, n)
    settings = run_settings(kw, app.verbosity)
    judge_llm = load_llm(judge_spec, home=store.home, **settings)
    # --batch is for the API models: a local model under evaluation answers in-process as always
    model_batch = settings["batch"] and has_batch_api(model_spec, store.home)
    model_llm = load_llm(model_spec, home=store.home, **{**settings, "budget_usd": None, "batch": model_batch})
    answer_config = AnswerConfig(max_tokens=max_tokens, temperature=temperature)
    if dry_run:
        stage = MTBenchAnswer(answer_config)
        rows = asked.read().iter_rows(named=True)
        print_estimate(model_llm, [stage.request(r, [], 0) for r in rows])
        click.echo("later turns and the judge's calls depend on the answers: not estimated")
        return
    # every turn keeps its grade: the benchmark averages them all, it filters nothing
    judge = MTBenchSingle(JudgeConfig(max_tokens=judge_max_tokens, keep_all=True, min_score=None))
    result = run(store, model_llm, judge_llm, asked, prefix, answer_config, judge)
    results = summarize(result, model_llm.spec, judge_llm.spec, source)
    headers, rows = table_rows(results)
    click.echo(f"MT-Bench: {model_llm.spec} judged by {judge_llm.spec} ({results['graded']} turns graded, "
               f"{results['failed']} failed)")
    click.echo(table(headers, rows))
    path = out or store.home / "evals" / f"{prefix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    click.echo(f"results: {path}", err=True)
    if checkpoint is not None and results["score"] is not None:
        from factory.records import record_eval

        record_eval(checkpoint, results["eval"])
        click.echo(f"recorded in {checkpoint / 'factory.json'} (model cards show it)", err=True)
    click.echo(str(path))  # the last line names what was made, so a recipe stage can chain it


def checkpoint_dir(model_spec: str) -> Path | None:
    """The checkpoint directory behind `hf:DIR` when it has a `factory.json` whose `eval` we fill."""
    provider, _, model = model_spec.partition(":")
    path = Path(model) if provider == "hf" and model else None
    return path if path is not None and (path / "factory.json").is_file() else None


@eval_.command("speculative")
@click.option("--target", "target_spec", required=True, metavar="SPEC",
              help="The model whose output counts: a checkpoint directory, a Hub id, hf:PATH, or local.")
@click.option("--draft", "draft_spec", required=True, metavar="SPEC",
              help="The smaller model that proposes tokens (e.g. a pruned target); same tokenizer as --target.")
@click.option("--prompts", required=True, metavar="REF",
              help="Prompts: a dataset version or a JSONL/Parquet file (messages, instruction, or prompt/text).")
@click.option("--n", "n", type=ROWS, default=16, show_default=True, help="Use the first N prompts.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results JSON here (default: $FACTORY_HOME/evals/speculative-<draft>.json).")
@pass_app
def speculative(app: App, target_spec: str, draft_spec: str, prompts: str, n: int, max_new_tokens: int,
                out: Path | None) -> None:
    """Assisted (speculative) greedy decoding: how many of the draft's tokens the target accepts.

    Reports the acceptance rate (accepted draft tokens / proposed), mean accepted tokens per step, tokens/s
    with and without the draft, and whether the assisted outputs equal the target's own greedy outputs.

    \b
    Examples:
      factory eval speculative --target local --draft ckpt/distill/self-distill-merged --prompts seeds:math_heldout
    """
    from factory.cli._fmt import table
    from factory.cli._models import model_source, read_rows
    from factory.eval.mt_bench import slug
    from factory.eval.speculative import prompt_messages, run_speculative, write_results

    rows, where = read_rows(app.store, prompts, n)
    messages = prompt_messages(rows, where["ref"])
    sources = (model_source(target_spec, app.home), model_source(draft_spec, app.home))
    results = run_speculative(target_spec, draft_spec, messages, sources=sources, max_new_tokens=max_new_tokens)
    results["prompts_source"] = where

    def num(value: Any, digits: int = 3) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    click.echo(f"speculative decoding: target {target_spec}, draft {draft_spec}, {results['prompts']} prompts")
    click.echo(table(["acceptance", "accepted/step", "tok/s target", "tok/s assisted", "speedup", "identical"], [[
        num(results["acceptance_rate"]), num(results["mean_accepted_per_step"], 2),
        num(results["tokens_per_s_target"], 1), num(results["tokens_per_s_assisted"], 1),
        num(results["speedup"], 2), f"{results['identical']}/{results['prompts']}"]]))
    path = out or app.home / "evals" / f"speculative-{slug(draft_spec)}.json"
    written = write_results(results, path)
    click.echo(f"results: {written}", err=True)
    click.echo(str(written))  # the last line names what was made, so a recipe stage can chain it
