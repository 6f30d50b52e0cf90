"""SPIN (Chen et al. 2024): self-play fine-tuning as an outer loop of two stages, generate then DPO.

For t = 0..K-1, with model_0 the SFT model and model_t = DIR/iter_{t-1}:

1. generate: model_t answers the SFT prompts through the `self-play` scheme (`run_stage`: a new dataset
   version `<name>-iter<t>`, every answer cached as it arrives);
2. train: TRL's DPO (sigmoid) loss with chosen = ground truth, rejected = model_t's answer, on this iteration's
   pairs plus the previous iteration's (`mix: previous`, as in the paper), against reference model_t: a fresh
   LoRA on model_t (TRL's reference is the adapter-disabled model, i.e. model_t), merged into the weights at the
   end; or full fine-tuning against a frozen copy. `DIR/iter_t/` is a checkpoint like `factory train`'s
   (`factory.json` with `method: spin` and a `spin` section: iteration, reference, data chain).

Resuming: a finished iteration (`DIR/iter_t/factory.json` with the same settings) is never redone; a rerun
after a crash reuses the stored generations and the cached answers, and continues an interrupted DPO run from
its partial directory. Answers of model_t (t >= 1) are cached in `DIR/llm-cache.sqlite`, which lives and dies
with the weights that wrote them. Per-iteration metrics go to `DIR/spin.json`, plotted in `DIR/spin.png`, with
the optional evaluation of the SFT model and of every iterate (`eval`: held-out exact match, MT-Bench, lm-eval;
see `spin_eval`) and an optional early stop when the reward margin stops improving.
"""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput
from factory.papers import DPO, SPIN
from factory.recipes.spin_config import SpinConfig
from factory.records import CheckpointRecord
from factory.schemes.self_play import SelfPlay
from factory.store import check_name

if TYPE_CHECKING:
    from factory.recipes.spin_eval import SpinEvaluator
    from factory.store import DatasetVersion, Store

log = logging.getLogger(__name__)
METHOD = "spin"
PAPERS = (SPIN, DPO)  # self-play fine-tuning, trained with DPO's loss against the previous iterate
SPIN_JSON = "spin.json"
SPIN_PLOT = "spin.png"
LLM_CACHE = "llm-cache.sqlite"
METRIC_KEYS = ("train_loss", "rewards/margins", "rewards/chosen", "rewards/rejected", "rewards/accuracies")


@dataclass
class SpinResult:
    out: Path
    last: Path  # the newest finished iteration's checkpoint
    iterations: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    sft: dict[str, Any] | None = None  # model_0's evaluation (the table's SFT row), when evaluating


def iteration_dir(out: Path, t: int) -> Path:
    return out / f"iter_{t}"


def run_spin(store: Store, cfg: SpinConfig, *, quiet: bool = False) -> SpinResult:
    """Run (or finish) K SPIN iterations into `cfg.out`; see the module docstring."""
    cfg.require()
    source = store.resolve(cfg.data)
    SelfPlay.check_inputs(list(source.manifest.columns), f"SFT dataset {source.ref}")
    local = Path(cfg.model).expanduser()
    name = check_name(cfg.name or f"spin-{source.name}")
    out = Path(cfg.out).expanduser().absolute()
    cfg = cfg.model_copy(update={"model": str(local.absolute()) if local.exists() else cfg.model})
    plans = [_train_config(cfg.at(t), "<model_t>", [], out, t) for t in range(cfg.iterations)]
    _check_model(cfg)
    from trl import DPOConfig

    for t, plan in enumerate(plans):  # every iteration's settings are checked before anything is written
        plan.check_sections(DPOConfig)
        SelfPlay(cfg.at(t).generation).recipe()
    source, evaluator = _evaluation(store, cfg, source, out, name)
    # pin the data version (the training rows) and the model's place: identities and lineage name exactly these
    cfg = cfg.model_copy(update={"data": source.ref})
    finished = _finished(out, cfg)

    out.mkdir(parents=True, exist_ok=True)
    model = _base_model(cfg, out)
    history: list[dict[str, Any]] = []
    result = SpinResult(out=out, last=Path(model))
    if evaluator is not None:
        result.sft = {"iteration": -1, "model": model, "eval": evaluator.evaluate("sft", model)}
        _write_summary(out, cfg, history, result.sft)
    for t in range(cfg.iterations):
        c = cfg.at(t)
        directory = iteration_dir(out, t)
        doc = finished.get(t)
        if doc is None:
            log.info("SPIN iteration %d: generating with %s", t, model)
            pairs = _generate(store, c, model, source, name, t, out, quiet)
            versions = _mix(store, c.mix, history, pairs)
            doc = _train(store, c, model, versions, directory, t, cfg, history, pairs, quiet)
        else:
            log.info("SPIN iteration %d finished in an earlier run; kept", t)
        entry = {**doc["spin"], "metrics": {k: doc["metrics"].get(k) for k in METRIC_KEYS}}
        if evaluator is not None:
            entry["eval"] = evaluator.evaluate(f"iter_{t}", str(directory))
        history.append(entry)
        result.iterations.append(entry)
        result.last = directory
        _write_summary(out, cfg, history, result.sft)
        model = str(directory)
        if cfg.early_stop and len(history) > 1 and not _improved(history[-2], history[-1]):
            result.stopped_early = True
            log.info("SPIN: the reward margin did not improve at iteration %d; stopping early", t)
            break
    return result


# -- checks before anything is written ------------------------------------------------------------------------
def _check_model(cfg: SpinConfig) -> None:
    """model_0 loads, and it has a chat template (generation and DPO both format turns with it)."""
    from factory.trainers.model import NAMED_TEMPLATES, check_model_spec, load_tokenizer

    check_model_spec(cfg.model, cfg.model_init)
    if cfg.chat_template != "none":
        candidates = (NAMED_TEMPLATES / f"{cfg.chat_template}.jinja", Path(cfg.chat_template).expanduser())
        if cfg.chat_template != "chatml" and not any(p.is_file() for p in candidates):
            raise BadInput(f"config: chat_template: {cfg.chat_template!r} is neither chatml, a named template, "
                           "none, nor a .jinja file")
        return
    if not load_tokenizer(cfg.model, cfg.model_init).chat_template:
        raise BadInput(f"model {cfg.model} has no chat template; give an SFT/chat model, or --set "
                       "chat_template=chatml (or a .jinja file)")


def _evaluation(store: Store, cfg: SpinConfig, source: DatasetVersion, out: Path, name: str
                ) -> tuple[DatasetVersion, SpinEvaluator | None]:
    """The rows SPIN trains on (all of --data, or what `eval.fraction` does not hold out) and the evaluator."""
    if not cfg.eval.enabled:
        return source, None
    from factory.recipes.spin_eval import SpinEvaluator

    heldout = None
    if cfg.eval.fraction:
        from factory.recipes.splits import holdout_split

        source, heldout = holdout_split(store, source, cfg.eval.fraction, cfg.eval.seed)
    elif cfg.eval.heldout:
        from factory.store.importer import resolve_or_import

        heldout = resolve_or_import(store, cfg.eval.heldout, "spin-heldout")
    return source, SpinEvaluator(store, cfg.eval, out, name, heldout, cfg.generation.turns)


def _finished(out: Path, cfg: SpinConfig) -> dict[int, dict[str, Any]]:
    """Iterations a previous run finished; one trained with other settings makes this run an error."""
    done = {}
    for t in range(cfg.iterations):
        record = CheckpointRecord.find(iteration_dir(out, t))
        doc = record.document() if record is not None else None
        if doc is None or doc.get("method") != METHOD:
            continue
        if doc["spin"].get("identity") != cfg.identity(t):
            raise BadInput(f"{iteration_dir(out, t)} was trained with other SPIN settings (model, data, generation "
                           "or training); use another --out, or delete it to start over")
        done[t] = doc
    return done


def _base_model(cfg: SpinConfig, out: Path) -> str:
    """model_0; a base without a chat template gets the configured one, saved once as `DIR/base`."""
    if cfg.chat_template == "none":
        return cfg.model
    target = out / "base"
    if (target / "config.json").is_file():
        return str(target)
    from factory.trainers.model import ensure_chat_template, load_model, load_tokenizer

    tokenizer = load_tokenizer(cfg.model, cfg.model_init)
    if tokenizer.chat_template:
        return cfg.model
    model = load_model(cfg.model, cfg.model_init)
    ensure_chat_template(tokenizer, model, cfg.chat_template)
    partial = out / "base.partial"
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    partial.rename(target)
    return str(target)


# -- the two stages of an iteration ---------------------------------------------------------------------------
def _generate(store: Store, c: SpinConfig, model: str, source: DatasetVersion, name: str, t: int, out: Path,
              quiet: bool) -> DatasetVersion:
    from factory.llm import load_llm
    from factory.llm.cache import ResponseCache
    from factory.pipeline.execute import run_stage

    revision = None
    if t > 0:  # DIR/iter_{t-1} may be rewritten by a later run: its path alone does not name its weights
        record = CheckpointRecord.find(Path(model))
        revision = f"{record.config_hash}@{record.created}" if record is not None else "@"
    stage = SelfPlay(c.generation.model_copy(update={"iteration": t, "model_revision": revision}))
    llm = load_llm(f"{c.engine}:{Path(model).absolute() if Path(model).exists() else model}", home=store.home,
                   batch_size=c.batch_size, progress=not quiet)
    if t > 0 and llm.cache is not None:
        llm.cache = ResponseCache(out / LLM_CACHE)
    try:
        result = run_stage(store, stage, llm, source, f"{name}-iter{t}", limit=c.n)
    finally:
        del llm
        gc.collect()
    counters = result.version.manifest.counters
    log.info("SPIN iteration %d: %s, %d pairs (%d failed, %d identical to the ground truth)", t, result.version.ref,
             counters.get("kept", 0), counters.get("failed", 0), counters.get("identical", 0))
    return result.version


def _mix(store: Store, mix: str, history: list[dict[str, Any]], pairs: DatasetVersion) -> list[DatasetVersion]:
    """This iteration's pairs, plus the previous iteration's (paper) or all earlier ones."""
    earlier = [] if mix == "none" else history[-1:] if mix == "previous" else history
    versions = [store.resolve(entry["generated"]) for entry in earlier]
    return [*versions, pairs]


def _train_config(c: SpinConfig, model: str, refs: list[str], out: Path, t: int) -> Any:
    from factory.trainers import TrainConfig

    return TrainConfig(method="dpo", model=model, data=refs, out=str(iteration_dir(out, t)), tuning=c.tuning,
                       merge=True, chat_template="none", lora=c.lora, model_init=c.model_init,
                       training=c.train_settings())


def _train(store: Store, c: SpinConfig, model: str, versions: list[DatasetVersion], directory: Path, t: int,
           cfg: SpinConfig, history: list[dict[str, Any]], pairs: DatasetVersion, quiet: bool) -> dict[str, Any]:
    from factory.trainers import run_training

    tc = _train_config(c, model, [v.ref for v in versions], directory.parent, t)
    chain = [*({"iteration": h["iteration"], "model": h["reference"], "generated": h["generated"]} for h in history),
             {"iteration": t, "model": model, "generated": pairs.ref}]
    counters = pairs.manifest.counters
    spin = {"iteration": t, "identity": cfg.identity(t), "reference": model, "generated": pairs.ref,
            "trained_on": [v.ref for v in versions], "mix": c.mix, "chain": chain,
            "pairs": counters.get("kept", 0), "failed": counters.get("failed", 0),
            "identical": counters.get("identical", 0), "train_pairs": sum(v.manifest.rows for v in versions)}
    partial = directory.with_name(directory.name + ".partial")
    result = run_training(store, tc, resume=partial.is_dir(), quiet=quiet,
                          record_extra={"method": METHOD, "spin": spin})
    return result.record.document()


# -- metrics ------------------------------------------------------------------------------------------------
def _improved(before: dict[str, Any], now: dict[str, Any]) -> bool:
    a, b = before["metrics"].get("rewards/margins"), now["metrics"].get("rewards/margins")
    return a is None or b is None or b > a


def table(history: list[dict[str, Any]], sft: dict[str, Any] | None = None) -> str:
    """The per-iteration metrics as a text table, like the paper's: the SFT model first (when it was evaluated),
    then one row per iteration, with the evaluation columns that were run (what the command prints and
    spin.json keeps)."""
    from factory.recipes.spin_eval import columns

    rows = ([sft] if sft else []) + history
    evals = columns(rows)
    head = ["iter", "pairs", "trained on", "loss", "margin", "chosen", "rejected", "accuracy", *(h for h, _ in evals)]
    lines = [head]
    for h in rows:
        m = h.get("metrics") or {}
        trained = h["iteration"] >= 0
        lines.append([str(h["iteration"]) if trained else "SFT", str(h["pairs"]) if trained else "-",
                      str(h["train_pairs"]) if trained else "-", *(_num(m.get(k)) for k in METRIC_KEYS),
                      *(_num(read(h.get("eval") or {})) for _, read in evals)])
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in lines)


def _num(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.4f}"


def _write_summary(out: Path, cfg: SpinConfig, history: list[dict[str, Any]], sft: dict[str, Any] | None) -> None:
    doc = {"kind": "spin", "model": cfg.model, "data": cfg.data, **({"sft": sft} if sft else {}),
           "iterations": history, "table": table(history, sft)}
    tmp = out / f".{SPIN_JSON}.tmp"
    tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(out / SPIN_JSON)
    plot(out / SPIN_PLOT, history, sft)


def plot(path: Path, history: list[dict[str, Any]], sft: dict[str, Any] | None) -> Path | None:
    """spin.png: the reward margin and accuracy per iteration, and each evaluation from the SFT model on."""
    from factory.plots import line_panels
    from factory.recipes.spin_eval import columns

    metrics = [h.get("metrics") or {} for h in history]
    rows = ([sft] if sft else []) + history
    labels = (["SFT"] if sft else []) + [str(h["iteration"]) for h in history]
    pad = [None] if sft else []  # the SFT model was not trained here: no training metrics
    training = {"reward margin": pad + [m.get("rewards/margins") for m in metrics],
                "reward accuracy": pad + [m.get("rewards/accuracies") for m in metrics]}
    evals = {header: [read(r.get("eval") or {}) for r in rows] for header, read in columns(rows)}
    return line_panels(path, labels, [("training (implicit reward)", training), ("evaluation", evals)],
                       "SPIN: iteration by iteration")
