"""`factory prune`: score every span, remove the closest one, save a loadable checkpoint and a report.

    DIR/config.json, model.safetensors, tokenizer*, chat_template.jinja, generation_config.json
    DIR/factory.json           method "prune": base model, calibration data, removed span, distances, sizes
    DIR/prune-report.md        the distance per start block (table), removed span, parameters, FLOPs per token
    DIR/prune-distances.png    the same distances as a plot (matplotlib)

Everything a user can get wrong (the block count, the architecture, a calibration set without text, a
non-empty DIR) is refused before the weights load; the checkpoint is written to `DIR.partial/` and renamed.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.config import StrictModel
from factory.hashing import short_digest
from factory.papers import SELF_DISTILL
from factory.trainers import checkpoint
from factory.trainers import prune as P
from factory.trainers.outdir import OutDir

METHOD = "prune"
PAPERS = (SELF_DISTILL,)  # block pruning, then self-data distillation to recover: the paper's recipe
REPORT = "prune-report.md"
PLOT = "prune-distances.png"


class PruneConfig(StrictModel):
    blocks: int = Field(description="how many contiguous decoder blocks to remove")
    n_calib: int = Field(256, ge=1, description="calibration rows (the first N)")
    max_length: int = Field(512, ge=8, description="tokens per calibration text (longer ones are cut)")
    batch_size: int = Field(8, ge=1, description="calibration texts per forward pass")
    flops_context: int = Field(2048, ge=1, description="context length for the FLOPs-per-token estimate")


def run_prune(spec: str, source: str | Path, cfg: PruneConfig, rows: list[dict[str, Any]],
              calibration: dict[str, Any], out: str | Path, *, overwrite: bool = False,
              model_init: dict[str, Any] | None = None) -> dict[str, Any]:
    """Prune `source` (the model `spec` names) with calibration `rows`; return the written factory.json."""
    from factory.trainers.model import check_model_spec, load_model, load_tokenizer

    model_init = dict(model_init or {})
    check_model_spec(str(source), model_init)
    shape = P.model_shape(source, model_init)
    P.check_blocks(cfg.blocks, shape.blocks)
    outdir = OutDir(out, overwrite=overwrite)
    outdir.check(METHOD)
    tokenizer = load_tokenizer(str(source), model_init)
    texts = P.calibration_texts(rows[: cfg.n_calib], tokenizer, calibration.get("ref") or str(calibration))

    model = load_model(str(source), model_init).eval()
    before = {"blocks": shape.blocks, "parameters": P.parameter_count(model),
              "flops_per_token": P.flops_per_token(model.config, cfg.flops_context)}
    distances = P.angular_distances(model, tokenizer, texts, cfg.blocks, cfg.batch_size, cfg.max_length)
    start = P.best_start(distances)
    P.remove_span(model, start, cfg.blocks)
    after = {"blocks": len(P.decoder_layers(model)), "parameters": P.parameter_count(model),
             "flops_per_token": P.flops_per_token(model.config, cfg.flops_context)}
    summary = {"removed": [start, start + cfg.blocks - 1], "distances": distances, "before": before, "after": after,
               "flops_context": cfg.flops_context, "calibration": {**calibration, "texts": len(texts)},
               "flops_saved": 1 - after["flops_per_token"] / before["flops_per_token"]}
    config = {"model": spec, **cfg.model_dump(mode="json")}
    datasets = [{"name": calibration["name"], "version": calibration["version"]}] if "version" in calibration else []
    doc = checkpoint.record(method=METHOD, base_model=spec, adapter=False, datasets=datasets, config=config,
                            config_hash=short_digest(config), metrics=_metrics(summary), prune=summary)

    partial = outdir.open(METHOD)
    try:
        model.save_pretrained(str(partial), safe_serialization=True)
        tokenizer.save_pretrained(str(partial))
        (partial / REPORT).write_text(report_markdown(spec, summary))
        plot_distances(distances, start, cfg.blocks, partial / PLOT, title=f"{spec}: {cfg.blocks}-block spans")
        doc.write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    outdir.commit()
    return doc.document()


def _metrics(summary: dict[str, Any]) -> dict[str, Any]:
    b, a = summary["before"], summary["after"]
    return {"blocks_before": b["blocks"], "blocks_after": a["blocks"], "params_before": b["parameters"],
            "params_after": a["parameters"], "flops_per_token_before": b["flops_per_token"],
            "flops_per_token_after": a["flops_per_token"], "removed_distance": min(summary["distances"])}


def distance_table(distances: list[float], start: int, blocks: int) -> tuple[list[str], list[list[Any]]]:
    rows = [[i, f"{i}-{i + blocks - 1}", f"{d:.4f}", "removed" if i == start else ""]
            for i, d in enumerate(distances)]
    return ["start", "blocks", "distance", ""], rows


def report_markdown(spec: str, s: dict[str, Any]) -> str:
    b, a = s["before"], s["after"]
    lo, hi = s["removed"]
    blocks = hi - lo + 1
    headers, rows = distance_table(s["distances"], lo, blocks)
    lines = [f"# Pruning {spec}", "",
             f"Removed blocks {lo}-{hi} ({blocks} of {b['blocks']}): the span with the smallest mean angular "
             f"distance, {s['distances'][lo]:.4f}, over {s['calibration']['texts']} calibration texts.", "",
             "| | before | after | change |", "|---|---|---|---|",
             f"| blocks | {b['blocks']} | {a['blocks']} | -{blocks} |",
             f"| parameters | {b['parameters']:,} | {a['parameters']:,} | "
             f"{a['parameters'] / b['parameters'] - 1:+.1%} |",
             f"| FLOPs/token at {s['flops_context']} context | {b['flops_per_token']:,} | {a['flops_per_token']:,} | "
             f"{-s['flops_saved']:+.1%} |", "",
             "| " + " | ".join(h or "note" for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_distances(distances: list[float], start: int, blocks: int, path: Path, title: str) -> Path:
    from factory.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    try:
        ax.plot(range(len(distances)), distances, marker="o", color="#4c72b0")
        ax.scatter([start], [distances[start]], s=120, color="#c44e52", zorder=3, label=f"removed: {start}-"
                   f"{start + blocks - 1}")
        ax.set_xlabel("first block of the span")
        ax.set_ylabel("angular distance / π")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
