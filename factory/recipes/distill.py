"""`factory train distill`: Self-Data Distillation end to end, as resumable stages (arXiv:2410.09982).

    OUT/distill.json              the recipe, the stages' state, the results (written as stages finish)
    OUT/pruned/                   1. prune --blocks blocks of --model (factory prune)
    (store) NAME-train, -heldout  2. the held-out split of --data, when no --eval set is given
    (store) NAME-self-distill     3. the unpruned model rewrites the training answers (self-distill scheme)
    OUT/sft-self-distill/         4. SFT of the pruned model on the rewrites (LoRA adapter) ...
    OUT/sft-self-distill-merged/     ... merged into full weights
    OUT/sft/, OUT/sft-merged/     5. the plain-SFT baseline on the raw data (unless --no-baseline)
     OUT/eval/<stage>.json         6. accuracy of original, pruned, pruned+SFT, pruned+self-distilled SFT
    OUT/eval/<stage>-lm-eval.json    (and, with lm_eval_tasks, their lm-eval scores)
    OUT/results.md                   and the table, with retention = score / original score
    OUT/results.png                  the accuracies as bars

A rerun skips what is finished: checkpoint directories that exist are complete (each is renamed into place
when done), dataset versions are reused by recipe, teacher answers come from the LLM cache, and evaluations
from OUT/eval when the checkpoint and the eval set are the same. A run interrupted inside SFT resumes from its
last trainer checkpoint. Where the paper is silent, SDFT's settings are the defaults: LoRA on the attention
projections, learning rate 1e-4, greedy teacher.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.config import StrictModel, deep_merge
from factory.errors import BadInput
from factory.hashing import short_digest
from factory.recipes import distill_eval as E
from factory.records import CheckpointRecord
from factory.store import Store

log = logging.getLogger(__name__)
RECORD = "distill.json"
# SDFT (Yang et al. 2024): LoRA on the attention projections, lr 1e-4.
SFT_DEFAULTS: dict[str, Any] = {"tuning": "lora",
                                "lora": {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
                                "training": {"learning_rate": 1e-4}}
LABELS = {"original": "original", "pruned": "pruned", "sft": "pruned + SFT",
          "self-distill": "pruned + self-distilled SFT"}


class DistillConfig(StrictModel):
    model: str = Field(description="the model to prune and the teacher: a directory, Hub id, hf:PATH or local")
    blocks: int = Field(description="decoder blocks to remove")
    data: str = Field(description="SFT data REF: instruction/response rows (or messages)")
    out: str = Field(description="run directory")
    eval: str | None = Field(None, description="held-out REF (default: a split of --data)")
    eval_fraction: float = Field(0.1, gt=0, lt=1, description="share of --data held out when no --eval is given")
    eval_n: int | None = Field(None, ge=1, description="evaluate on the first N held-out rows")
    n: int | None = Field(None, ge=1, description="train on the first N training rows")
    n_calib: int = Field(256, ge=1, description="calibration rows for pruning (from the training data)")
    checker: str = Field("auto", description="answer checker for self-distillation and scoring")
    baseline: bool = Field(True, description="also train the plain-SFT baseline on the raw data")
    teacher_max_tokens: int = Field(256, ge=1)
    eval_max_tokens: int = Field(128, ge=1)
    batch_size: int = Field(16, ge=1, description="rows per generation batch (teacher and evaluation)")
    seed: int = 0
    lm_eval_tasks: list[str] = Field(default_factory=list, description="lm-eval tasks every model is scored on")
    lm_eval_include: list[str] = Field(default_factory=list, description="directories of lm-eval task YAML")
    lm_eval_limit: float | None = Field(None, gt=0, description="examples per lm-eval task (or a fraction)")
    train: dict[str, Any] = Field(default_factory=dict, description="TrainConfig keys for both SFT runs")


def identity(cfg: DistillConfig) -> str:
    """What the run directory holds; a rerun with another recipe is refused rather than mixed in."""
    evaluation_only = {"out", "eval_n", "eval_max_tokens", "batch_size", "lm_eval_tasks", "lm_eval_include",
                       "lm_eval_limit"}
    return short_digest(cfg.model_dump(mode="json", exclude=evaluation_only))


def run_distill(store: Store, cfg: DistillConfig, sources: dict[str, str], *, overwrite: bool = False,
                quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) the recipe; `sources` maps data REFs to what `read_rows` reads and the model to its path."""
    from factory.schemes.self_distill import SelfDistillConfig
    from factory.trainers import prune as P

    out = Path(cfg.out).expanduser().absolute()
    model_dir = sources["model"]
    shape = P.model_shape(model_dir)
    P.check_blocks(cfg.blocks, shape.blocks)
    SelfDistillConfig(checker=cfg.checker)  # an unknown checker is an error now, not after pruning
    if cfg.lm_eval_tasks:  # so is a missing lm-eval
        from factory.eval.lm_eval import require_lm_eval

        require_lm_eval()
    state = _open_run(out, cfg, overwrite)
    timings: dict[str, float] = state.setdefault("seconds", {})

    data = _stored(store, cfg.data, "distill-data")
    train, heldout = _split(store, data, cfg) if cfg.eval is None else (data, _stored(store, cfg.eval, "distill-eval"))
    if cfg.n is not None and cfg.n < train.manifest.rows:
        train = _head(store, train, cfg.n)
    _timed(timings, "prune", lambda: _prune(cfg, model_dir, train, out / "pruned"))
    distilled = _timed(timings, "self-distill", lambda: _self_distill(store, cfg, model_dir, train))
    state["datasets"] = {"train": train.ref, "heldout": heldout.ref, "self-distill": distilled.ref}
    _save(out, state)
    runs = [("self-distill", distilled)] + ([("sft", _as_messages(store, train))] if cfg.baseline else [])
    for stage, version in runs:
        _timed(timings, f"train-{stage}", lambda s=stage, v=version: _train(store, cfg, out, s, v, quiet))
        _save(out, state)

    rows = heldout.read().to_dicts()[: cfg.eval_n]
    settings = {"checker": cfg.checker, "max_tokens": cfg.eval_max_tokens, "batch_size": cfg.batch_size,
                "cache_dir": store.home}
    models = {"original": Path(model_dir), "pruned": out / "pruned",
              **{stage: out / f"{_dir(stage)}-merged" for stage, _ in runs}}
    results = []
    for stage in ("original", "pruned", "sft", "self-distill"):
        if stage not in models:
            continue
        r = _timed(timings, f"eval-{stage}", lambda s=stage: E.cached_evaluate(
            s, models[s], rows, heldout.ref, out, **settings))
        shape_s = P.model_shape(models[stage])
        results.append({"stage": stage, "label": LABELS[stage], "blocks": shape_s.blocks,
                        "parameters": _parameters(models[stage]), "accuracy": r["accuracy"],
                        "correct": r["correct"], "total": r["total"], "failed": r["failed"]})
        if cfg.lm_eval_tasks:
            results[-1]["lm_eval"] = _timed(timings, f"lm-eval-{stage}", lambda s=stage: E.cached_lm_eval(
                s, models[s], out, cfg.lm_eval_tasks, cfg.lm_eval_include, cfg.lm_eval_limit, cfg.batch_size,
                store.home))
    headers, table = E.results_table(results)
    base = results[0]["accuracy"]
    for r in results:
        r["retention"] = r["accuracy"] / base if base and r["accuracy"] is not None else None
        for task, metrics in (r.get("lm_eval") or {}).items():
            original = (results[0].get("lm_eval") or {}).get(task, {})
            r.setdefault("lm_eval_retention", {})[task] = {
                m: (v / original[m] if original.get(m) else None) for m, v in metrics.items()}
    state["results"] = results
    _save(out, state)
    (out / "results.md").write_text(f"Held-out set {heldout.ref} ({len(rows)} rows), checker {cfg.checker}\n\n"
                                    + E.markdown_table(headers, table))
    from factory.plots import bars

    bars(out / "results.png", [r["label"] for r in results], [r["accuracy"] for r in results],
         f"accuracy on {len(rows)} held-out rows", f"self-data distillation: {cfg.blocks} blocks pruned")
    return {**state, "table": (headers, table)}


def _open_run(out: Path, cfg: DistillConfig, overwrite: bool) -> dict[str, Any]:
    record = out / RECORD
    ident = identity(cfg)
    if record.is_file():
        state = json.loads(record.read_text())
        if state.get("identity") != ident and not overwrite:
            raise BadInput(f"{out} holds a distill run of another recipe ({state.get('identity')}, now {ident}); "
                           "pass --overwrite to start over")
        if state.get("identity") == ident and not overwrite:
            return state
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BadInput(f"--out {out} is not empty and holds no distill run; pass --overwrite to replace it")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    state = {"kind": "distill-run", "identity": ident, "config": cfg.model_dump(mode="json"), "seconds": {}}
    _save(out, state)
    return state


def _save(out: Path, state: dict[str, Any]) -> None:
    tmp = out / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(out / RECORD)


def _timed(timings: dict[str, float], key: str, fn: Any) -> Any:
    t0 = time.perf_counter()
    result = fn()
    timings[key] = round(timings.get(key, 0.0) + time.perf_counter() - t0, 1)
    return result


def _stored(store: Store, ref: str, fallback_name: str) -> Any:
    """A store version; a file (or seeds:NAME) is imported first, so lineage starts at its content."""
    from factory.store.importer import resolve_or_import

    return resolve_or_import(store, ref, fallback_name)


def _split(store: Store, data: Any, cfg: DistillConfig) -> tuple[Any, Any]:
    """A seeded held-out split by row content (not by position), as two versions with lineage."""
    from factory.recipes.splits import holdout_split

    return holdout_split(store, data, cfg.eval_fraction, cfg.seed)


def _head(store: Store, version: Any, n: int) -> Any:
    """The first `n` rows, as a version of their own (so lineage says which rows were trained on)."""
    from factory.pipeline.execute import run_stage
    from factory.recipes.splits import Head, HeadConfig

    return run_stage(store, Head(HeadConfig(n=n)), None, version, f"{version.name}-{n}").version


def _prune(cfg: DistillConfig, model_dir: str, train: Any, target: Path) -> None:
    from factory.trainers.prune_run import PruneConfig, run_prune

    if (target / "factory.json").is_file():
        log.info("pruned checkpoint %s exists; kept", target)
        return
    rows = train.scan().head(cfg.n_calib).collect().to_dicts()
    calibration = {"ref": train.ref, "name": train.name, "version": train.version}
    run_prune(cfg.model, model_dir, PruneConfig(blocks=cfg.blocks, n_calib=cfg.n_calib), rows, calibration, target,
              overwrite=True)


def _self_distill(store: Store, cfg: DistillConfig, model_dir: str, train: Any) -> Any:
    from factory.llm import load_llm
    from factory.pipeline.execute import run_stage
    from factory.schemes.self_distill import SelfDistill, SelfDistillConfig

    stage = SelfDistill(SelfDistillConfig(checker=cfg.checker, max_tokens=cfg.teacher_max_tokens, seed=cfg.seed))
    stage.check_inputs(list(train.manifest.columns), train.ref)
    teacher = load_llm(f"hf:{model_dir}", home=store.home, batch_size=cfg.batch_size, progress=False)
    return run_stage(store, stage, teacher, train, f"{train.name}-self-distill").version


def _as_messages(store: Store, version: Any) -> Any:
    """The raw data in TRL's `messages` format, for the plain-SFT baseline."""
    if "messages" in version.manifest.columns:
        return version
    from factory.pipeline.execute import run_stage
    from factory.pipeline.to_sft import ToSFT

    return run_stage(store, ToSFT(), None, version, f"{version.name}-sft").version


def _dir(stage: str) -> str:
    return "sft-self-distill" if stage == "self-distill" else "sft"


def _train(store: Store, cfg: DistillConfig, out: Path, stage: str, version: Any, quiet: bool) -> None:
    from factory.trainers import checkpoint
    from factory.trainers.merge import merge_adapter, merged_record
    from factory.trainers.run import load_config, run_training

    target, merged = out / _dir(stage), out / f"{_dir(stage)}-merged"
    if (merged / "factory.json").is_file():
        return
    if not (target / "factory.json").is_file():
        given = deep_merge(SFT_DEFAULTS, cfg.train)
        tcfg = load_config(None, [], **{**given, "method": "sft", "model": str(out / "pruned"),
                                        "data": [version.ref], "out": str(target)})
        partial = target.with_name(target.name + ".partial")
        run_training(store, tcfg, resume=partial.is_dir(), quiet=quiet)
    if (target / "adapter_config.json").is_file():
        tmp = merged.with_name(merged.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        merge_adapter(target, tmp, base=str(out / "pruned"))
        merged_record(target, str(out / "pruned")).write(tmp)
        tmp.rename(merged)
    else:  # full fine-tuning: the checkpoint is the merged model already
        checkpoint.link_or_copy_tree(target, merged)


def _parameters(model_dir: Path) -> int:
    record = CheckpointRecord.find(model_dir)
    prune = (record.model_extra.get("prune") if record is not None else None) or {}
    if prune:
        return int(prune["after"]["parameters"])
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                n = 1
                for d in f.get_slice(name).get_shape():
                    n *= d
                total += n
    return total
