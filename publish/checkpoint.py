"""Plan the publish of a checkpoint directory made by `factory train` as a model repo with a model card.

The directory's `factory.json` says what it is (`kind: checkpoint`, method, base model, adapter or full
weights, the dataset versions it was trained on, config, metrics, eval scores). Weights, tokenizer, generation
config and the redacted `factory.json` / `training_args.json` are pushed; trainer state (optimizer, scheduler,
RNG, intermediate `checkpoint-*` folders) is not.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.errors import BadInput
from factory.publish import lineage as lineage_mod
from factory.publish.dataset import PublishOptions
from factory.publish.papers import citations_for
from factory.publish.plan import Plan, PlanFile, parse_repo
from factory.publish.zoo import scores_text
from factory.records import FACTORY_JSON, REPO_ID, CheckpointRecord
from factory.secrets import redact
from factory.store import Store

META = FACTORY_JSON
SKIP = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "training_args.bin", "README.md", ".*")
SKIP_DIRS = ("checkpoint-*", "runs", ".*", "__pycache__")
REDACT = ("factory.json", "training_args.json")
STALE = ["*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf", "*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
DatasetRepoLookup = Callable[[str, str], "tuple[str, str] | None"]  # (name, version) -> (repo id, url)


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / META).is_file()


def _files(path: Path, meta: CheckpointRecord) -> tuple[list[PlanFile], list[str]]:
    out, notes = [], []
    # a sequential run keeps each stage as a checkpoint of its own (stage-1-<name>/factory.json): publish those
    # separately, by their own directory
    nested = [m.parent.relative_to(path).parts for m in path.rglob(META) if m.parent != path]
    for f in sorted(path.rglob("*")):
        rel = f.relative_to(path)
        if not f.is_file() or any(fnmatch.fnmatch(p, d) for p in rel.parts[:-1] for d in SKIP_DIRS):
            continue
        if any(rel.parts[:len(n)] == n for n in nested):
            continue
        if any(fnmatch.fnmatch(rel.name, s) for s in SKIP):
            continue
        name = rel.as_posix()
        if name in REDACT:
            data = json.loads(f.read_text())
            out.append(PlanFile(name, (json.dumps(redact(data), indent=2, sort_keys=True) + "\n").encode()))
        else:
            out.append(PlanFile(name, f))
    names = {f.path_in_repo for f in out}
    weights = [n for n in names if n.endswith((".safetensors", ".bin"))]
    needed = "adapter_config.json" if meta.adapter else "config.json"
    if needed not in names or not weights:
        kind = "an adapter (adapter_config.json + adapter weights)" if meta.adapter else "config.json + weights"
        raise BadInput(f"{path} has no {kind}: nothing loadable to publish")
    if not {"tokenizer.json", "tokenizer_config.json"} & names:
        notes.append(f"{path} has no tokenizer files; users will need the base model's tokenizer")
    return out, notes


def _stage_text(stage: Any) -> str:
    """A sequential run's stage entry ({stage, dataset: {name, version}, adapter, metrics}) as one line."""
    if not isinstance(stage, dict):
        return str(stage)
    data = stage.get("dataset") or {}
    text = f"stage {stage.get('stage', '?')} on `{data.get('name')}@{data.get('version')}`" if data else str(stage)
    loss = (stage.get("metrics") or {}).get("train_loss")
    return f"{text} (train_loss {loss:.4g})" if isinstance(loss, (int, float)) else text


def _flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in sorted(config.items()):
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            rows += _flatten(v, key + ".")
        else:
            rows.append((key, v if isinstance(v, str) else json.dumps(v, default=str)))
    return rows


def plan_checkpoint(path: Path, options: PublishOptions, store: Store | None,
                    papers: lineage_mod.PaperLookup | None = None,
                    dataset_repo: DatasetRepoLookup | None = None) -> Plan:
    from factory.cards.render import check_card, model_card

    repo_id = parse_repo(options.repo, "model")
    meta = CheckpointRecord.read(path)
    files, notes = _files(path, meta)
    method, base, adapter = meta.method, meta.base_model, meta.adapter
    scores = {str(b): (m if isinstance(m, dict) else {"score": m}) for b, m in meta.eval.items()}
    datasets, hub_datasets, nodes_all = [], [], []
    totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "usd": 0.0}
    for d in meta.datasets:
        name, version = d.name, d.version
        found = store.get(name, version) if store is not None and store.datasets_dir.is_dir() else None
        lineage = None
        if found is not None:
            nodes = lineage_mod.walk(store, found, papers)
            nodes_all += nodes
            lineage = {"nodes": nodes, "summary": lineage_mod.summarize(nodes)}
        repo = dataset_repo(name, version) if dataset_repo else None
        if repo:
            hub_datasets.append(repo[0])
        datasets.append({"ref": f"{name}@{version}", "repo": repo[0] if repo else None,
                         "url": repo[1] if repo else None, "lineage": lineage})
    seen = set()
    for n in nodes_all:  # the same upstream version feeding two datasets is paid for once
        if not n["missing"] and n["ref"] not in seen:
            seen.add(n["ref"])
            for k in totals:
                totals[k] += n["cost"].get(k, 0) or 0
    spin = meta.model_extra.get("spin") if isinstance(meta.model_extra.get("spin"), dict) else None
    if spin and spin.get("chain"):  # a SPIN iterate is a fine-tune of model_0; model_t was its reference
        base = str(spin["chain"][0].get("model") or base)
    # a record written before `tuning` was recorded: an adapter is LoRA, full weights were trained in full
    tuning = meta.tuning or ("lora" if adapter else "full")
    declared = [*lineage_mod.lookup_papers(papers, "method", method),
                *lineage_mod.lookup_papers(papers, "tuning", tuning)]
    citations = citations_for([*declared, *lineage_mod.stage_papers(nodes_all)])
    base_id = base if REPO_ID.match(base) and not Path(base).exists() else None
    if base_id is None:
        notes.append(f"base model {base!r} is not a Hub repo id; the card's base_model metadata is left out")
    model_name = repo_id.split("/")[1]
    config = redact(meta.config)
    context = {
        "model_name": model_name, "repo_id": repo_id, "method": method, "base_model": base, "adapter": adapter,
        "stages": [_stage_text(s) for s in meta.stages], "config_hash": meta.config_hash,
        "created": meta.created, "factory_version": meta.versions.get("factory", ""),
        "hyperparameters": _flatten(config), "metrics": meta.metrics,
        "versions": meta.versions, "eval": scores, "datasets": datasets, "cost": totals,
        "description": f"{'A LoRA adapter for' if adapter else 'A fine-tune of'} `{base}`, trained with {method} and "
                       "published by factory; its data lineage, hyperparameters and costs are below.",
        "citations": [c.as_dict() for c in citations], "spin": spin,
    }
    if spin:
        context["description"] = (f"SPIN (self-play fine-tuning) iteration {spin.get('iteration')} of `{base}`: "
                                  "trained with DPO's loss to prefer the ground-truth answers over the answers of "
                                  "its reference, the previous iterate. Its data chain, hyperparameters and costs "
                                  "are below.")
    tags = ["factory", "trl", method, *(["peft", "lora"] if adapter else []), "text-generation"]
    card = model_card(context=context, license=options.license, language=options.language, tags=tags,
                      base_model=base_id, datasets=hub_datasets, library_name="peft" if adapter else "transformers",
                      scores=scores)
    try:
        check_card(card)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"model card: {exc}") from None
    config_hash = meta.config_hash
    flat_scores = scores_text(scores)
    note = f"{method}{' LoRA' if adapter else ''} of {base} on {', '.join(d['ref'] for d in datasets) or '-'}"
    note += f"; eval: {flat_scores}" if flat_scores else "; no eval yet"
    tags_git = [t for t in (config_hash[:12], options.tag) if t]
    return Plan(
        kind="model", repo_id=repo_id, what=f"checkpoint {path} ({method})", files=files, card=str(card),
        revision=options.revision, private=options.private, tags=list(dict.fromkeys(tags_git)), stale=STALE,
        commit_message=options.message or f"factory: publish {method} checkpoint {config_hash[:12]}".rstrip(),
        collection=options.collection, note=note[:500], notes=notes,
        record={"kind": "model", "method": method, "base_model": base, "adapter": adapter,
                "version": config_hash[:12], "datasets": [d["ref"] for d in datasets], "eval": scores,
                "lineage": [n["ref"] for n in nodes_all]},
    )
