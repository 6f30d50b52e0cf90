"""A thin wrapper over the LM Eval Harness (`lm-eval`, the `eval` extra) for checkpoints, adapters and Hub ids.

lm-eval's built-in tasks download their data from the Hub; factory ships one small multiple-choice task over a
local JSONL file (`factory_smoke`, in factory/data/lm_eval_tasks) so the path can be checked offline, and any
task directory can be added with `include_paths` (its relative `data_files` are resolved against the YAML file).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from factory.errors import BadInput, FactoryError

SHIPPED_TASKS = Path(__file__).resolve().parents[1] / "data" / "lm_eval_tasks"
INSTALL_HINT = 'pip install "dataset-factory[eval]"  (or: pip install lm_eval)'
# lm-eval reports stderr next to each metric ("acc_stderr,none"); the card keeps the metrics themselves.
SKIP_METRIC_SUFFIXES = ("_stderr",)
NOT_METRICS = ("sample_len", "sample_count")


def require_lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError:
        raise FactoryError(f"`factory eval lm-eval` needs the LM Eval Harness: {INSTALL_HINT}") from None
    return lm_eval


def model_args(ref: str, cache_dir: Path, dtype: str = "float32") -> dict[str, Any]:
    """lm-eval `hf` model arguments for a checkpoint dir (a LoRA adapter loads on its base), `local`, or a Hub id."""
    from factory.llm.hf_local import adapter_base, resolve_model_source

    spec = ref[3:] if ref.startswith("hf:") else ref
    path = Path(spec).expanduser()
    base = adapter_base(path, cache_dir) if path.is_dir() else None
    if base is not None:
        tokenizer = path if any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")) else base
        return {"pretrained": str(base), "peft": str(path.resolve()), "tokenizer": str(tokenizer), "dtype": dtype}
    if spec not in ("", "local") and not path.exists() and (spec.startswith((".", "/", "~")) or spec.count("/") > 1):
        raise BadInput(f"--model {ref}: no such checkpoint directory")
    return {"pretrained": str(resolve_model_source(spec, cache_dir)), "dtype": dtype}


@contextmanager
def include_dir(paths: list[str | Path]) -> Iterator[Path]:
    """A temporary copy of the shipped tasks and `paths`, with relative `data_files` made absolute."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="factory-lm-eval-") as tmp:
        root = Path(tmp)
        for i, src in enumerate([SHIPPED_TASKS, *map(Path, paths)]):
            if not src.is_dir():
                raise BadInput(f"--include-path {src}: not a directory of lm-eval task YAML files")
            dst = root / f"{i}-{src.name}"
            shutil.copytree(src, dst)
            for task_file in dst.rglob("*.yaml"):
                _absolutize(task_file, src / task_file.relative_to(dst), yaml)
        yield root


def _absolutize(task_file: Path, original: Path, yaml: Any) -> None:
    try:
        doc = yaml.safe_load(task_file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return  # lm-eval's own tags (!function ...): leave the file as it is
    files = ((doc or {}).get("dataset_kwargs") or {}).get("data_files") if isinstance(doc, dict) else None
    if not files:
        return

    def fix(p: str) -> str:
        return p if Path(p).is_absolute() else str((original.parent / p).resolve())
    if isinstance(files, str):
        doc["dataset_kwargs"]["data_files"] = fix(files)
    elif isinstance(files, dict):
        doc["dataset_kwargs"]["data_files"] = {k: ([fix(p) for p in v] if isinstance(v, list) else fix(v))
                                               for k, v in files.items()}
    task_file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def evaluate(args: dict[str, Any], tasks: list[str], include_paths: list[str | Path] = (), limit: float | None = None,
             batch_size: int = 8, num_fewshot: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Run lm-eval; returns {"tasks": {task: {metric: value}}, "model_args": ..., "versions": ...}."""
    lm_eval = require_lm_eval()
    from lm_eval.tasks import TaskManager

    if not tasks:
        raise BadInput("--tasks: name at least one lm-eval task (e.g. factory_smoke)")
    with include_dir(list(include_paths)) as inc:
        # Indexing lm-eval's thousands of built-in task files takes tens of seconds: only when they are needed.
        manager = TaskManager(include_path=str(inc), include_defaults=False)
        if any(t not in manager.all_tasks for t in tasks):
            manager = TaskManager(include_path=str(inc))
        unknown = [t for t in tasks if t not in manager.all_tasks]
        if unknown:
            raise BadInput(f"unknown lm-eval task {unknown[0]!r}; offline, use a local task (factory_smoke, or a "
                           "directory given with --include-path)")
        out = lm_eval.simple_evaluate(model="hf", model_args=args, tasks=list(tasks), task_manager=manager,
                                      limit=limit, batch_size=batch_size, num_fewshot=num_fewshot, device=device,
                                      log_samples=False)
    if not out or "results" not in out:
        raise FactoryError("lm-eval returned no results")
    scores = {task: _metrics(values) for task, values in out["results"].items()}
    return {"tasks": scores, "model_args": {k: str(v) for k, v in args.items()}, "limit": limit,
            "num_fewshot": num_fewshot, "versions": {k: str(v) for k, v in (out.get("versions") or {}).items()},
            "lm_eval_version": getattr(lm_eval, "__version__", "unknown")}


def _metrics(values: dict[str, Any]) -> dict[str, float]:
    """{"acc,none": 0.5, "acc_stderr,none": 0.1, "alias": ...} -> {"acc": 0.5} (finite numbers only)."""
    metrics = {}
    for key, value in values.items():
        name = key.split(",")[0]
        skip = name.endswith(SKIP_METRIC_SUFFIXES) or name in NOT_METRICS
        if skip or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            metrics[name] = float(value)
    return metrics


def card_scores(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """What a checkpoint's factory.json `eval` (and so its model card's model-index) takes: {task: {metric: v}}."""
    return {task: metrics for task, metrics in results["tasks"].items() if metrics}
