"""`factory train sft|dpo|spin|merge-adapter`: fine-tune a model on dataset versions through TRL and PEFT."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from factory.cli._flags import ROWS, FiniteFloat
from factory.cli.main import App

_RUN_KEYS = ("model", "data", "out", "config_file", "sets", "overwrite", "resume")


def run_options(command: Any) -> Any:
    """The options every way of starting a run shares (the group, `sft`, `dpo`)."""
    options = [
        click.option("--model", "-m", metavar="SPEC",
                     help="Base model: a local directory, a Hub id, hf:ID_OR_PATH, or local (the embedded "
                          "SmolLM2-135M-Instruct, offline on CPU)."),
        click.option("--data", "-d", multiple=True, metavar="REF[,REF...]",
                     help="Dataset versions (NAME, NAME@VERSION, or a version dir); several SFT datasets train "
                          "in sequence, one stage each."),
        click.option("--out", "-o", metavar="DIR", help="Checkpoint directory to write."),
        click.option("--config", "-c", "config_file", type=click.Path(dir_okay=False),
                     help="YAML recipe (its `method:` names sft or dpo when no subcommand is given)."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Set a config key: tuning=full, lora.r=8, training.max_steps=100, training.beta=0.1, ..."),
        click.option("--overwrite", is_flag=True, help="Replace a non-empty --out once the new run has finished."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run for --out from its last checkpoint."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(invoke_without_command=True)
@run_options
@click.pass_context
def train(ctx: click.Context, **opts: Any) -> None:
    """Fine-tune a model on dataset versions: SFT (LoRA, QLoRA, full), sequential SFT, DPO, SPIN.

    \b
    Examples:
      factory train sft --model BASE --data orca --out ckpt/sft
      factory train sft --model BASE --data lamini,evol,orca --out ckpt/seq       one stage per dataset
      factory train dpo --model ckpt/seq --data hh-dpo --out ckpt/dpo --set training.beta=0.1
      factory train sft ... --set tuning=qlora                                    4-bit, needs CUDA
      factory train spin --model ckpt/sft --data sft --iterations 2 --out ckpt/spin   self-play (SPIN)
      factory train --config recipe.yaml                                          method from the recipe
      factory train merge-adapter ckpt/sft --out ckpt/sft-merged
      accelerate launch --config_file recipes/accelerate/ddp.yaml -m factory train sft ...

    \b
    Config keys (YAML or --set): method, model, data, out, tuning (lora|qlora|full), qlora_fallback
    (error|lora), sequential (merge|continue|off), chat_template (chatml|none|FILE.jinja), and the sections
    lora (peft.LoraConfig), quantization (BitsAndBytesConfig), model_init (from_pretrained), training
    (trl.SFTConfig / trl.DPOConfig). See docs/training.md.
    """
    ctx.meta["factory.train"] = opts
    if ctx.invoked_subcommand is not None:
        return
    if not opts["config_file"] and not opts["sets"]:
        click.echo(ctx.get_help())
        return
    _run(ctx, None, opts)


@train.command("sft")
@run_options
@click.pass_context
def sft(ctx: click.Context, **opts: Any) -> None:
    """Supervised fine-tuning on `messages` datasets; several datasets train in sequence (OpenBezoar)."""
    _run(ctx, "sft", opts)


@train.command("dpo")
@run_options
@click.pass_context
def dpo(ctx: click.Context, **opts: Any) -> None:
    """Direct preference optimization on `prompt`/`chosen`/`rejected` datasets."""
    _run(ctx, "dpo", opts)


@train.command("spin")
@click.option("--model", "-m", metavar="SPEC", help="model_0: the SFT model (a local directory or a Hub id).")
@click.option("--data", "-d", metavar="REF", help="The SFT dataset whose answers are the ground truth.")
@click.option("--iterations", "-k", type=int, metavar="K", help="Number of SPIN iterations.")
@click.option("--out", "-o", metavar="DIR", help="Directory for DIR/iter_<t>/ checkpoints and DIR/spin.json.")
@click.option("--mix", type=click.Choice(["none", "previous", "all"]),
              help="Train iteration t on its pairs only, plus iteration t-1's (default, as in the paper), or all.")
@click.option("--n", "n", type=int, help="Use only the first N rows of the SFT dataset.")
@click.option("--eval", "heldout", metavar="REF",
              help="Evaluate every iterate (and the SFT model) by exact match on this held-out set.")
@click.option("--eval-fraction", "fraction", type=FiniteFloat(0, 1, min_open=True, max_open=True),
              help="Hold this share of --data out (not self-played, not trained on) and evaluate on it.")
@click.option("--eval-n", "eval_n", type=click.IntRange(min=1), help="Evaluate on the first N held-out rows.")
@click.option("--mt-bench-judge", metavar="SPEC", help="Also run MT-Bench on every iterate, judged by this LLM.")
@click.option("--mt-bench-n", type=click.IntRange(min=1), help="MT-Bench questions (spread over the categories).")
@click.option("--lm-eval-tasks", metavar="T[,T...]", help="Also run these lm-eval tasks on every iterate.")
@click.option("--early-stop", is_flag=True, default=None,
              help="Stop when an iteration's reward margin is not above the previous iteration's.")
@click.option("--config", "-c", "config_file", type=click.Path(dir_okay=False), help="YAML file of SPIN settings.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="max_tokens=64, max_steps=10, beta=0.1, iterations.2.learning_rate=1e-7, tuning=full, "
                   "eval.max_tokens=32, eval.checker=numbers, ...")
@click.pass_context
def spin(ctx: click.Context, config_file: str | None, sets: tuple[str, ...], heldout: str | None,
         fraction: float | None, eval_n: int | None, mt_bench_judge: str | None, mt_bench_n: int | None,
         lm_eval_tasks: str | None, **given: Any) -> None:
    """SPIN self-play fine-tuning: each iteration, the model answers the SFT prompts and DPO teaches it to prefer
    the ground truth over its own answers, against the previous iterate as reference.

    A rerun skips finished iterations and reuses stored generations and cached answers. The per-iteration
    metrics (and, with --eval/--eval-fraction/--mt-bench-judge/--lm-eval-tasks, each iterate's scores, the
    SFT model's first) are printed as a table and kept in DIR/spin.json; `factory publish DIR/iter_<t>`
    publishes one.

    \b
    Examples:
      factory train spin --model ckpt/sft --data sft-data --iterations 3 --out ckpt/spin
      factory train spin ... --set iterations.2.learning_rate=1e-7 --set iterations.3.beta=5.0
      factory train spin ... --n 200 --set max_tokens=64 --set max_steps=10        a quick look
      factory train spin ... --eval-fraction 0.1 --mt-bench-judge claude --early-stop
    """
    from factory.recipes.spin import run_spin, table
    from factory.recipes.spin_config import load_spin_config

    app = ctx.find_object(App)
    tasks = [t.strip() for t in lm_eval_tasks.split(",") if t.strip()] if lm_eval_tasks else None
    evaluation = {"heldout": heldout, "fraction": fraction, "n": eval_n, "mt_bench_judge": mt_bench_judge,
                  "mt_bench_n": mt_bench_n, "lm_eval_tasks": tasks}
    cfg = load_spin_config(config_file, sets, eval=evaluation, **given)
    quiet = app.verbosity < 0
    with _quiet_libraries(quiet), contextlib.redirect_stdout(sys.stderr):
        result = run_spin(app.store, cfg, quiet=quiet)
    if not quiet:
        click.echo(table(result.iterations, result.sft), err=True)
        if result.stopped_early:
            click.echo("stopped early: the reward margin did not improve", err=True)
    click.echo(str(result.last))


@train.command("merge-adapter")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the merged full weights.")
@click.option("--base", metavar="SPEC", help="Base model (default: the one the adapter's factory.json names).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out.")
def merge_adapter_command(directory: Path, out: Path, base: str | None, overwrite: bool) -> None:
    """Merge the LoRA adapter in DIRECTORY into its base model's weights."""
    import shutil

    from factory.errors import BadInput
    from factory.records import CheckpointRecord
    from factory.trainers.merge import adapter_base, check_adapter_dir, merged_record
    from factory.trainers.merge import merge_adapter as merge
    from factory.trainers.outdir import OutDir

    if not directory.is_dir():
        raise BadInput(f"{directory}: no such checkpoint directory")
    check_adapter_dir(directory)
    base = base or adapter_base(directory)
    target = OutDir(out, overwrite=overwrite)
    target.check("merge")
    record = CheckpointRecord.find(directory)
    model_init = (record.config.get("model_init") if record else None) or {}
    partial = target.open("merge")
    try:
        merge(directory, partial, base=base, model_init=model_init)
        merged_record(directory, base).write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    click.echo(str(target.commit()))


def base_model_spec(spec: str, home: Any) -> str:
    """`--model` takes what `--llm` takes where it names local weights: `local`, `hf:ID_OR_PATH`, an alias."""
    from factory.errors import BadInput
    from factory.llm.spec import ALIASES, home_config, parse_spec

    aliases = home_config(home).aliases
    if spec not in {**ALIASES, **aliases}:
        return spec  # a folder, a Hub id, or hf:... (the trainer reads those)
    provider, model = parse_spec(spec, aliases)
    if provider != "hf":
        raise BadInput(f"--model {spec} is {provider}:{model}, an API model: training needs weights "
                       "(local, hf:ID_OR_PATH, a folder or a Hub id)")
    return model or "local"


def _run(ctx: click.Context, method: str | None, opts: dict[str, Any]) -> None:
    from factory.errors import BadInput
    from factory.trainers.run import load_config, run_training

    app = ctx.find_object(App)
    opts = _with_group_options(ctx, opts)
    cfg = load_config(opts["config_file"], opts["sets"], model=opts["model"], data=list(opts["data"]),
                      out=opts["out"])
    if method is not None:
        if cfg.method not in (None, method):
            raise BadInput(f"the config says method: {cfg.method}, but the command is `factory train {method}`")
        cfg.method = method
    if cfg.model is not None:
        cfg.model = base_model_spec(cfg.model, app.home)
    quiet = app.verbosity < 0
    # TRL prints its log lines (loss, ...) to stdout; stdout is for the checkpoint path, like other commands' refs.
    with _quiet_libraries(quiet), contextlib.redirect_stdout(sys.stderr):
        result = run_training(app.store, cfg, overwrite=opts["overwrite"], resume=opts["resume"], quiet=quiet)
    if not result.main:  # under accelerate/torchrun the main process reports
        return
    if not quiet:
        doc = result.record
        loss = doc.metrics.get("train_loss")
        data = ", ".join(d.ref() for d in doc.datasets)
        click.echo(f"trained {doc.method} ({doc.tuning}) on {data}: {doc.metrics.get('steps', '?')} steps, "
                   f"train_loss {loss if loss is None else round(loss, 4)}", err=True)
    click.echo(str(result.out))


def _with_group_options(ctx: click.Context, opts: dict[str, Any]) -> dict[str, Any]:
    """`factory train --config r.yaml sft --set ...`: the group's options, then the subcommand's."""
    group = ctx.parent.meta.get("factory.train", {}) if ctx.parent is not None else {}
    if not group or group is opts:
        return opts
    merged = {}
    for key in _RUN_KEYS:
        mine, theirs = opts.get(key), group.get(key)
        if key in ("sets", "data"):
            merged[key] = tuple(theirs or ()) + tuple(mine or ())
        elif isinstance(mine, bool):
            merged[key] = mine or bool(theirs)
        else:
            merged[key] = mine if mine is not None else theirs
    return merged


@contextlib.contextmanager
def _quiet_libraries(quiet: bool) -> Iterator[None]:
    """-q: no progress bars, info logs or library warnings from transformers and datasets (errors still print).

    Scoped to the command, so a caller that runs several commands in one process gets its settings back.
    """
    if not quiet:
        yield
        return
    import warnings

    import datasets
    import transformers

    tlog, dlog = transformers.utils.logging, datasets.utils.logging
    before = (tlog.get_verbosity(), tlog.is_progress_bar_enabled(), dlog.get_verbosity(),
              datasets.is_progress_bar_enabled())
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    dlog.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        tlog.set_verbosity(before[0])
        dlog.set_verbosity(before[2])
        if before[1]:
            tlog.enable_progress_bar()
        if before[3]:
            datasets.enable_progress_bars()


@train.command("distill")
@click.option("--model", "-m", required=True, metavar="SPEC",
              help="The model to prune, and the teacher: a directory, a Hub id, hf:PATH, or local.")
@click.option("--blocks", required=True, type=int, help="How many contiguous decoder blocks to prune.")
@click.option("--data", "-d", required=True, metavar="REF",
              help="SFT data: instruction/response rows (or messages); a dataset version, a file, or seeds:NAME.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path), help="Run directory.")
@click.option("--eval", "eval_ref", metavar="REF",
              help="Held-out set (instruction plus answer or response); default: hold out a share of --data.")
@click.option("--eval-n", type=click.IntRange(min=1), help="Evaluate on the first N held-out rows.")
@click.option("--n", "n_train", type=ROWS, help="Train on the first N training rows.")
@click.option("--n-calib", type=click.IntRange(min=1), default=256, show_default=True,
              help="Calibration rows for pruning.")
@click.option("--checker", default="auto", show_default=True,
              help="Answer checker for self-distillation and scoring: auto, numbers, choices, code, none.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also train the plain-SFT baseline on the raw data.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True,
              help="Longest teacher rewrite.")
@click.option("--eval-max-tokens", type=click.IntRange(min=1), default=128, show_default=True,
              help="Longest answer when evaluating.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Rows per generation batch (teacher and evaluation).")
@click.option("--lm-eval-tasks", metavar="T[,T...]",
              help="Also score every model with these lm-eval tasks (the `eval` extra), with retention.")
@click.option("--lm-eval-include", multiple=True, type=click.Path(file_okay=False),
              help="A directory of lm-eval task YAML files (repeatable).")
@click.option("--lm-eval-limit", type=FiniteFloat(min=0, min_open=True),
              help="Examples per lm-eval task (an integer), or a fraction of each task (below 1).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A training config key for both SFT runs: tuning=full, training.num_train_epochs=2, lora.r=8, ...")
@click.option("--overwrite", is_flag=True, help="Start over in a --out that holds another or an old run.")
@click.pass_context
def distill(ctx: click.Context, model: str, blocks: int, data: str, out: Path, eval_ref: str | None,
            eval_n: int | None, n_train: int | None, n_calib: int, checker: str, baseline: bool, max_tokens: int,
            eval_max_tokens: int, batch_size: int, lm_eval_tasks: str | None, lm_eval_include: tuple[str, ...],
            lm_eval_limit: float | None, sets: tuple[str, ...], overwrite: bool) -> None:
    """Self-data distillation: prune, rewrite the SFT data with the unpruned model, fine-tune the pruned one.

    Stages (a rerun skips finished ones): prune --blocks blocks (angular distance), the unpruned model
    rewrites the training answers in its own words (self-distill scheme), SFT of the pruned model on the
    rewrites and, as a baseline, on the raw data; then the accuracy of original, pruned, pruned+SFT and
    pruned+self-distilled SFT on the held-out set (and on --lm-eval-tasks), with retention = score /
    original score. Defaults where the paper is silent follow SDFT: LoRA on q/k/v/o projections, learning rate 1e-4.

    \b
    Examples:
      factory train distill --model local --blocks 6 --data seeds:math_sft --eval seeds:math_heldout --out runs/d
      factory train distill --model ckpt/sft --blocks 4 --data chat --out runs/d --set training.num_train_epochs=1
    """
    from factory.cli._fmt import table
    from factory.cli._models import model_source
    from factory.config import parse_sets
    from factory.errors import BadInput
    from factory.recipes.distill import DistillConfig, run_distill

    app = ctx.find_object(App)
    if blocks <= 0:
        raise BadInput(f"--blocks must be a positive number of blocks, got {blocks}")
    from pydantic import ValidationError

    from factory.config import validation_message

    try:
        cfg = DistillConfig(model=model, blocks=blocks, data=data, out=str(out), eval=eval_ref, eval_n=eval_n,
                            n=n_train, n_calib=n_calib, checker=checker, baseline=baseline,
                            teacher_max_tokens=max_tokens, eval_max_tokens=eval_max_tokens, batch_size=batch_size,
                            lm_eval_tasks=[t.strip() for t in (lm_eval_tasks or "").split(",") if t.strip()],
                            lm_eval_include=list(lm_eval_include), lm_eval_limit=lm_eval_limit,
                            train=parse_sets(sets))
    except ValidationError as exc:
        raise BadInput(validation_message(exc)) from None
    quiet = app.verbosity < 0
    with _quiet_libraries(quiet), contextlib.redirect_stdout(sys.stderr):
        result = run_distill(app.store, cfg, {"model": model_source(model, app.home)}, overwrite=overwrite,
                             quiet=quiet)
    headers, rows = result["table"]
    click.echo(table(headers, rows), err=True)
    seconds = sum(result["seconds"].values())
    click.echo(f"stage times (s): {result['seconds']} (total {seconds:.0f} s)", err=True)
    click.echo(str(out.expanduser().absolute()))
