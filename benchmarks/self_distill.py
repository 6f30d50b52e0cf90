"""`factory train distill` on SmolLM2-135M-Instruct (CPU): the four-row table of the Self-Data Distillation recipe.

Prunes 6 of the 30 blocks, self-distills the shipped arithmetic SFT set (`seeds:math_sft`, the first 240 of its
320 rows) with the unpruned model as teacher, trains LoRA SFT of the pruned model on the rewrites and (baseline)
on the raw rows, and scores original, pruned, pruned+SFT and pruned+self-distilled SFT on the shipped held-out set
(`seeds:math_heldout`, 60 rows, final-number exact match). Writes its section of RESULTS.md from the run's
`distill.json`, with the seconds each stage took. The run resumes when rerun with the same --out.

    python benchmarks/self_distill.py --out /tmp/distill-run [--home /tmp/distill-home] [--report-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _results import record

COMMAND = ["train", "distill", "--model", "local", "--blocks", "6", "--data", "seeds:math_sft",
           "--eval", "seeds:math_heldout", "--n", "240", "--eval-n", "60", "--n-calib", "64",
           "--max-tokens", "96", "--eval-max-tokens", "64",
           "--batch-size", "16", "--set", "training.num_train_epochs=1",
           "--set", "training.per_device_train_batch_size=8", "--set", "training.max_length=160",
           "--set", "training.logging_steps=5", "--set", "training.save_steps=10"]


def report(out: Path, wall_s: float | None, note: str) -> None:
    from factory.recipes.distill_eval import markdown_table, results_table

    state = json.loads((out / "distill.json").read_text())
    results = state.get("results") or partial_results(out)
    headers, rows = results_table(results)
    seconds = state.get("seconds", {})
    pruned = json.loads((out / "pruned" / "factory.json").read_text())["prune"]
    lo, hi = pruned["removed"]
    times = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    total = sum(seconds.values())
    body = [f"`factory {' '.join(COMMAND)} --out DIR`", "",
            markdown_table(headers, rows),
            f"Removed blocks {lo}-{hi} (angular distance {min(pruned['distances']):.4f}); "
            f"{pruned['before']['parameters']:,} -> {pruned['after']['parameters']:,} parameters, "
            f"{pruned['flops_saved']:.1%} fewer FLOPs per token at {pruned['flops_context']} context.", "",
            f"Stage times: {times}; total {total / 60:.1f} min"
            + (f" (this invocation: {wall_s / 60:.1f} min wall)" if wall_s else "") + ".", "", note]
    record("Self-data distillation on SmolLM2-135M-Instruct (benchmarks/self_distill.py)", "\n".join(body))


def partial_results(out: Path) -> list[dict]:
    """The rows of a run that has not finished: the evaluations that are done (an unfinished stage is left out)."""
    from factory.recipes.distill import LABELS, _parameters
    from factory.trainers.prune import model_shape

    rows = []
    for stage in ("original", "pruned", "sft", "self-distill"):
        path = out / "eval" / f"{stage}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            rows.append({"label": LABELS[stage], "blocks": model_shape(r["model"]).blocks,
                         "parameters": _parameters(Path(r["model"])), **{k: r[k] for k in ("accuracy", "correct",
                                                                                           "total")}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--home", type=Path, default=Path(".factory"))
    parser.add_argument("--report-only", action="store_true", help="only write the section from --out")
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    wall = None
    if not args.report_only:
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "factory", "--home", str(args.home), *COMMAND, "--out", str(args.out)]
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
    report(args.out, wall, args.note)


if __name__ == "__main__":
    main()
