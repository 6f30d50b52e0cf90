"""SPIN on a GPU: 2 iterations on a >= 0.5B chat model, answers generated with vLLM, LoRA DPO (needs CUDA).

The same loop as benchmarks/spin_cpu.py (`factory train spin` through the real CLI, the templated SFT rows),
with `engine=vllm` so model_t generates through vLLM's offline engine, bf16 training and the paper's 256 new
tokens. vLLM is given a share of GPU memory (`providers.vllm.gpu_memory_utilization` in the home's
config.yaml) so DPO fits beside it. Without CUDA it says so and exits with status 2, running nothing.

    pip install -e ".[gpu]"
    python benchmarks/gpu_spin.py --model Qwen/Qwen2.5-0.5B-Instruct [--rows 512] [--iterations 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

from _results import record
from spin_cpu import factory, sft_rows


def require_gpu() -> None:
    import torch

    if not torch.cuda.is_available():
        print("gpu_spin: needs a CUDA GPU (vLLM generation, bf16 DPO) and none is visible; nothing was run",
              file=sys.stderr)
        sys.exit(2)
    if importlib.util.find_spec("vllm") is None:
        print("gpu_spin: needs vLLM: pip install -e '.[gpu]'; nothing was run", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a >= 0.5B chat model: local directory or Hub id")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--vllm-memory", type=float, default=0.35, help="share of GPU memory vLLM may take")
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    require_gpu()
    work = args.work or Path(tempfile.mkdtemp(prefix="factory-gpu-spin-"))
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(f"providers:\n  vllm: {{gpu_memory_utilization: {args.vllm_memory}}}\n")
    data = work / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(args.rows)))
    r = factory(home, "datasets", "import", str(data), "--name", "sft")
    assert r.returncode == 0, r.stderr
    out = work / "spin"
    start = time.perf_counter()
    r = factory(home, "-v", "train", "spin", "--model", args.model, "--data", "sft", "--iterations",
                str(args.iterations), "--out", str(out), "--set", "engine=vllm",
                "--set", f"max_tokens={args.max_tokens}", "--set", f"learning_rate={args.lr}",
                "--set", "num_train_epochs=1", "--set", "bf16=true",
                "--set", "per_device_train_batch_size=8", "--set", "model_init.dtype=bfloat16")
    wall = time.perf_counter() - start
    (work / "spin.log").write_text(r.stderr)
    if r.returncode != 0:
        sys.exit(f"gpu_spin: factory train spin failed (log: {work / 'spin.log'}): {r.stderr.strip()[-2000:]}")
    import torch

    summary = json.loads((out / "spin.json").read_text())
    record(f"SPIN on a GPU: {args.model}, {args.iterations} iterations, vLLM generation (benchmarks/gpu_spin.py)", f"""
```
{summary["table"]}
```

{torch.cuda.get_device_name(0)}; {args.rows} templated SFT rows, answers sampled with vLLM at temperature 0.8,
top_p 0.95, {args.max_tokens} new tokens; LoRA DPO (beta 0.1, RMSprop, lr {args.lr:g}, 1 epoch, bf16), merged after
each iteration; iteration t >= 1 trains on its pairs plus iteration t-1's. Whole run {wall / 60:.1f} min.
""")


if __name__ == "__main__":
    main()
