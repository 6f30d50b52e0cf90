"""GPU generation: `vllm:` against `hf:` on the same GPU and model, in the same run (CUDA only).

    pip install -e ".[gpu]"
    python benchmarks/gpu_generation.py --model HF_ID_OR_PATH [--prompts 256] [--max-tokens 128]

Without CUDA (or without vllm) it says so and exits 2; CI never runs it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from _results import record

from factory.llm import ChatRequest, load_llm


def prompts(n: int, max_tokens: int) -> list[ChatRequest]:
    topics = ["rivers", "prime numbers", "sourdough", "volcanoes", "chess openings", "the water cycle"]
    return [ChatRequest(messages=[{"role": "user", "content": f"Write a paragraph about {topics[i % 6]} (#{i})."}],
                        temperature=0.0, max_tokens=max_tokens) for i in range(n)]


def run(spec: str, reqs: list[ChatRequest], home: str, **options) -> tuple[float, int]:
    llm = load_llm(spec, home=home, cache=False, progress=False, **options)
    llm.generate_sync(reqs[:4])  # warm-up: load weights, compile, allocate the KV cache
    llm = load_llm(spec, home=home, cache=False, progress=False, **options)
    start = time.perf_counter()
    out = llm.generate_sync(reqs)
    elapsed = time.perf_counter() - start
    failed = [c.error for c in out if not c.ok]
    if failed:
        raise SystemExit(f"{spec}: {len(failed)} rows failed, first: {failed[0]}")
    return elapsed, sum(c.completion_tokens for c in out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="HuggingFaceTB/SmolLM2-360M-Instruct")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--hf-batch", type=int, default=64)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("gpu_generation: no CUDA device is visible; this benchmark runs only on a GPU", file=sys.stderr)
        raise SystemExit(2)
    try:
        import vllm  # noqa: F401
    except ImportError:
        print('gpu_generation: vllm is not installed; pip install -e ".[gpu]"', file=sys.stderr)
        raise SystemExit(2) from None
    home = tempfile.mkdtemp(prefix="factory-bench-")
    reqs = prompts(args.prompts, args.max_tokens)
    t_hf, tok_hf = run(f"hf:{args.model}", reqs, home, batch_size=args.hf_batch,
                       provider_options={"device": "cuda"})  # bf16 on CUDA by default
    t_vllm, tok_vllm = run(f"vllm:{args.model}", reqs, home, provider_options={"gpu_memory_utilization": 0.8})
    record("GPU generation, vllm vs hf (benchmarks/gpu_generation.py)", f"""
{torch.cuda.get_device_name(0)}; {args.model}; {args.prompts} prompts, greedy, up to {args.max_tokens} new tokens.

| engine | wall | completion tokens/s | ratio |
|---|---|---|---|
| `hf:` (transformers, batch {args.hf_batch}, bf16) | {t_hf:.1f} s | {tok_hf / t_hf:,.0f} | 1.00 |
| `vllm:` | {t_vllm:.1f} s | {tok_vllm / t_vllm:,.0f} | {(tok_vllm / t_vllm) / (tok_hf / t_hf):.1f} |
""")


if __name__ == "__main__":
    main()
