"""Batched vs one-by-one local generation on CPU through the `hf:` provider, in the same run.

Greedy, `max_tokens` 32, short chat prompts. Batched output must equal one-by-one output (checked). The tiny
test model shows the batching machinery; SmolLM2-135M-Instruct (the embedded default) a real small model.

    python benchmarks/local_generation.py [--smol-prompts 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _results import record

from factory.llm import ChatRequest, load_llm
from factory.testing.tiny import build_tiny_llama

QUESTIONS = ["What is the capital of France?", "Name three primary colours.", "Why is the sky blue?",
             "Give a synonym for happy.", "What is 12 times 7?", "Describe a cat in one sentence.",
             "What do bees make?", "Translate 'good morning' to Spanish."]


def prompts(n: int) -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "user", "content": f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})"}],
                        temperature=0.0, max_tokens=32) for i in range(n)]


def timed(spec: str, home: str, n: int, batch_size: int) -> tuple[float, list[str]]:
    llm = load_llm(spec, home=home, batch_size=batch_size, cache=False, progress=False)
    llm.provider.generator.load()  # load time is not generation time
    start = time.perf_counter()
    out = llm.generate_sync(prompts(n))
    return time.perf_counter() - start, [c.text for c in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny-prompts", type=int, default=64)
    ap.add_argument("--smol-prompts", type=int, default=32)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="factory-bench-")
    tiny = build_tiny_llama(Path(home) / "tiny", num_layers=4)
    rows = ["| model | prompts | one by one | batched (16) | speed-up | same texts |", "|---|---|---|---|---|---|"]
    for label, spec, n in (("tiny Llama (4 layers)", f"hf:{tiny}", args.tiny_prompts),
                           ("SmolLM2-135M-Instruct", "local", args.smol_prompts)):
        t1, texts1 = timed(spec, home, n, 1)
        t16, texts16 = timed(spec, home, n, 16)
        rows.append(f"| {label} | {n} | {n / t1:.2f} rows/s | {n / t16:.2f} rows/s | **{t1 / t16:.1f}x** | "
                    f"{texts1 == texts16} |")
    record("Local generation, batched vs one by one (benchmarks/local_generation.py)", "\n".join(rows) + """

Greedy decoding, 32 new tokens, CPU fp32. Batches are left-padded and sorted by prompt length; "same texts"
checks that batching changes no output.
""")


if __name__ == "__main__":
    main()
