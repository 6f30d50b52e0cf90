"""SPIN on CPU with a real small model: SmolLM2-135M-Instruct, a few hundred SFT rows, 2 iterations, LoRA.

The SFT rows are generated here from templates with checkable answers (arithmetic, capitals, spelling
backwards, parity, upper-casing): nothing shipped has a few hundred rows, and the point is the loop, not the
data. Another `--heldout` rows from the same templates (different questions) are never self-played or trained
on: the SFT model and every iterate answer them greedily, scored by exact match with the templated answer
(`factory train spin --eval`). `factory train spin` runs as a user runs it (a subprocess of the real CLI); the
per-iteration table (the SFT model's row first; DPO loss, implicit-reward margin, chosen/rejected rewards and
accuracy, each the mean over the iteration's last epoch; held-out exact match), the held-out exact match per
task, and the wall time of each iteration go to benchmarks/RESULTS.md, whatever they show.

    python benchmarks/spin_cpu.py [--rows 200] [--heldout 50] [--max-tokens 32] [--lr 5e-5] [--model local]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import record

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin",
            "Egypt": "Cairo", "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo",
            "Greece": "Athens", "Chile": "Santiago", "Poland": "Warsaw", "Cuba": "Havana", "Ireland": "Dublin",
            "Portugal": "Lisbon", "Austria": "Vienna", "Sweden": "Stockholm", "Finland": "Helsinki",
            "Thailand": "Bangkok", "Vietnam": "Hanoi", "Argentina": "Buenos Aires", "Turkey": "Ankara",
            "Hungary": "Budapest"}
WORDS = ["river", "garden", "planet", "window", "silver", "market", "forest", "pencil", "bridge", "candle",
         "rocket", "orange", "winter", "island", "guitar", "mirror", "castle", "button", "ladder", "violet"]


TASKS = ["add", "capital", "backwards", "parity", "upper"]


def sft_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def parity(k: int) -> str:
        return "even" if k % 2 == 0 else "odd"

    makers = [
        lambda a, b, w, v, c: (f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."),
        lambda a, b, w, v, c: (f"What is the capital of {c}?", f"The capital of {c} is {CAPITALS[c]}."),
        lambda a, b, w, v, c: (f"Spell the word '{w}' backwards.", f"'{w}' spelled backwards is '{w[::-1]}'."),
        lambda a, b, w, v, c: (f"Is {a * 7 + b} even or odd?", f"{a * 7 + b} is {parity(a * 7 + b)}."),
        lambda a, b, w, v, c: (f"Write '{w} {v}' in capital letters.", f"{w.upper()} {v.upper()}"),
    ]
    rows, seen = [], set()
    while len(rows) < n:
        a, b, c = rng.randint(2, 60), rng.randint(2, 60), rng.choice(sorted(CAPITALS))
        w, v = rng.choice(WORDS), rng.choice(WORDS)
        task = rng.randrange(len(makers))
        question, answer = makers[task](a, b, w, v, c)
        if question not in seen:
            seen.add(question)
            rows.append({"id": f"{TASKS[task]}-{len(rows):04d}", "instruction": question, "response": answer})
    return rows


def factory(home: Path, *args: str) -> subprocess.CompletedProcess:
    # One torch thread: on a shared machine, OpenMP threads spinning for a busy core slow a run down many times.
    env = {"OMP_NUM_THREADS": "1", **os.environ, "FACTORY_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "factory", *args], capture_output=True, text=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200, help="SFT rows SPIN self-plays and trains on")
    ap.add_argument("--heldout", type=int, default=50, help="more templated rows, only evaluated on")
    ap.add_argument("--model", default="local", help="model_0 (default: the embedded SmolLM2-135M-Instruct)")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--print-only", action="store_true", help="print the section, leave RESULTS.md as it is")
    ap.add_argument("--work", type=Path, help="keep the store and checkpoints here (default: a temp dir)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="factory-spin-bench-"))
    home = work / "home"
    work.mkdir(parents=True, exist_ok=True)
    rows = sft_rows(args.rows + args.heldout)  # distinct questions: no held-out row is a training row
    for name, part in (("sft", rows[: args.rows]), ("sft-heldout", rows[args.rows:])):
        data = work / f"{name}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in part))
        r = factory(home, "datasets", "import", str(data), "--name", name)
        assert r.returncode == 0, r.stderr
    from factory.llm.hf_local import resolve_model_source

    model = resolve_model_source(args.model, home)  # `local`: SmolLM2-135M-Instruct as safetensors (converted once)
    out = work / "spin"
    cmd = ["-v", "train", "spin", "--model", str(model), "--data", "sft", "--iterations", str(args.iterations),
           "--out", str(out), "--set", f"max_tokens={args.max_tokens}", "--set", "seed=null",
           "--set", f"learning_rate={args.lr}", "--set", f"num_train_epochs={args.epochs}",
           "--set", "per_device_train_batch_size=8", "--set", "max_length=128",
           "--eval", "sft-heldout", "--set", "eval.checker=none", "--set", f"eval.max_tokens={args.max_tokens}"]
    start, began = time.perf_counter(), time.time()
    r = factory(home, *cmd)
    wall = time.perf_counter() - start
    (work / "spin.log").write_text(r.stderr)
    assert r.returncode == 0, r.stderr[-4000:]
    summary = json.loads((out / "spin.json").read_text())
    done = [((out / f"iter_{t}" / "factory.json").stat().st_mtime - began) / 60 for t in range(args.iterations)]
    model_name = "SmolLM2-135M-Instruct" if args.model == "local" else args.model
    title = f"SPIN on CPU: {model_name}, {args.iterations} iterations, LoRA (benchmarks/spin_cpu.py)"
    (print_section if args.print_only else record)(title, f"""
```
{summary["table"]}
```

Held-out exact match per task (correct/total; `heldout EM` above is over all {args.heldout} rows):

{per_task(out, [summary.get("sft"), *summary["iterations"]])}

{args.rows} templated SFT rows (arithmetic, capitals, spelling backwards, parity, upper-casing; built by the
script) and {args.heldout} more, held out: the SFT model (row `SFT`) and each iterate answer them greedily
({args.max_tokens} new tokens), correct when the answer equals the templated one after case and whitespace are
normalized. Self-play answers sampled at temperature 0.8, top_p 0.95, {args.max_tokens} new tokens; DPO sigmoid
loss, beta 0.1, LoRA r 16 on all linear layers merged after each iteration, RMSprop, lr {args.lr:g},
{args.epochs:g} epoch(s), batch 8; iteration 1 trains on its own pairs plus iteration 0's. Metrics are TRL's,
averaged over each iteration's last epoch: `margin` = mean(β·(log-ratio chosen − log-ratio rejected)),
`accuracy` = share of pairs whose implicit reward ranks the ground truth first. Whole run {wall / 60:.1f} min on
this shared machine (iterations finished after {", ".join(f"{m:.1f}" for m in done)} min; generation, training,
merge and evaluation included).
""")


def print_section(section: str, body: str) -> None:
    print(f"## {section}\n\n{body.strip()}")


def per_task(out: Path, rows: list[dict | None]) -> str:
    """A markdown table: one row per checkpoint (SFT, iter 0, ...), exact match per template task."""
    lines = ["| model | " + " | ".join(TASKS) + " |", "|---|" + "---|" * len(TASKS)]
    for row in rows:
        if row is None:
            continue
        label = "SFT" if row["iteration"] < 0 else f"iter {row['iteration']}"
        scored = row["eval"]["heldout"]["rows"]
        cells = []
        for task in TASKS:
            mine = [o for o in scored if str(o["id"]).startswith(f"{task}-")]
            cells.append(f"{sum(o['correct'] for o in mine)}/{len(mine)}" if mine else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
