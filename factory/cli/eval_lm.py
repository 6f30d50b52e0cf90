"""`factory eval lm-eval --model REF --tasks T,...`: the LM Eval Harness on a checkpoint, an adapter or a Hub id."""

from __future__ import annotations

import json
from pathlib import Path

import click

from factory.cli._flags import FiniteFloat
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command("lm-eval")
@click.option("--model", "model_ref", required=True, metavar="REF",
              help="A checkpoint directory from `factory train` (LoRA adapters load on their base), `local` "
                   "(the embedded SmolLM2-135M-Instruct), or a Hub id / model folder.")
@click.option("--tasks", required=True, metavar="T[,T...]",
              help="lm-eval task names, comma-separated (offline: factory_smoke, or tasks from --include-path).")
@click.option("--include-path", "include_paths", multiple=True, type=click.Path(file_okay=False),
              help="A directory of lm-eval task YAML files (repeatable); relative data_files are resolved.")
@click.option("--limit", type=FiniteFloat(min=0, min_open=True),
              help="Examples per task (an integer), or a fraction of each task (below 1).")
@click.option("--num-fewshot", type=click.IntRange(min=0), help="Few-shot examples (default: the task's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:0, ...")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Results JSON (default: CHECKPOINT/eval/lm-eval.json, else $FACTORY_HOME/evals/).")
@pass_app
def lm_eval_command(app: App, model_ref: str, tasks: str, include_paths: tuple[str, ...], limit: float | None,
                    num_fewshot: int | None, batch_size: int, device: str, out: Path | None) -> None:
    """Score a model with the LM Eval Harness; a checkpoint's factory.json (and so its model card) records it.

    \b
    Examples:
      factory eval lm-eval --model ckpt/sft --tasks factory_smoke
      factory eval lm-eval --model ckpt/dpo --tasks arc_easy,hellaswag --limit 200      (tasks from the Hub)
      factory eval lm-eval --model local --tasks my_task --include-path my_tasks/
    """
    from factory.cli._fmt import table
    from factory.eval.lm_eval import card_scores, evaluate, model_args, require_lm_eval
    from factory.records import record_eval

    require_lm_eval()
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    limit_arg = int(limit) if limit is not None and limit >= 1 else limit
    args = model_args(model_ref, app.store.home / "cache")
    results = evaluate(args, names, list(include_paths), limit=limit_arg, batch_size=batch_size,
                       num_fewshot=num_fewshot, device=device)
    results["model"] = model_ref
    rows = [[task, metric, f"{value:.4f}"] for task, metrics in results["tasks"].items()
            for metric, value in metrics.items()]
    click.echo(table(["task", "metric", "value"], rows))
    checkpoint = _checkpoint(model_ref)
    default = (checkpoint / "eval" if checkpoint else app.store.home / "evals") / "lm-eval.json"
    path = out or default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    click.echo(f"results: {path}", err=True)
    if checkpoint is not None:
        record_eval(checkpoint, card_scores(results))
        click.echo(f"recorded in {checkpoint / 'factory.json'} (model cards show it)", err=True)
    click.echo(str(path))


def _checkpoint(ref: str) -> Path | None:
    path = Path(ref[3:] if ref.startswith("hf:") else ref)
    return path if (path / "factory.json").is_file() else None

