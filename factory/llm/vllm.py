"""`vllm:ID`: the vLLM offline engine, for GPUs (`pip install "factory[gpu]"`).

Engine options (under `providers: vllm:` in `$FACTORY_HOME/config.yaml`) pass straight through to `vllm.LLM`
(`gpu_memory_utilization`, `max_model_len`, `dtype`, `quantization`, ...), so multi-GPU runs use vLLM's own
parallelism: `tensor_parallel_size`, `pipeline_parallel_size` and `data_parallel_size` are checked (whole numbers
>= 1) and passed on. Under `--executor ray` each worker holds one engine and asks Ray for the GPUs it spans
(tp x pp x dp, `ray_resources`): `--workers N` engines, one per GPU group. A request's JSON schema becomes guided
decoding (structured outputs). For a separate `vllm serve` process, use `openai:MODEL` with `OPENAI_BASE_URL`.
"""

from __future__ import annotations

import time
from typing import Any

from factory.errors import FactoryError
from factory.llm.provider import Provider, missing_extra
from factory.llm.types import ChatRequest, Completion


def require_cuda(what: str) -> None:
    import torch

    if not torch.cuda.is_available():
        raise FactoryError(f"{what} needs a CUDA GPU and none is visible; on CPU use hf:MODEL instead")


class VLLMProvider(Provider):
    name = "vllm"
    local = True

    def __init__(self, model: str, *, batch_size: int = 256, **engine_options: Any):
        super().__init__(model)
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise missing_extra("vllm", "gpu", " (the vllm: provider runs the vLLM engine)") from exc
        require_cuda("vllm:")
        self.engine_options = engine_kwargs(model, engine_options)
        self._engine = None

    def ray_resources(self) -> dict[str, float]:
        return {"num_cpus": 1, "num_gpus": engine_gpus(self.engine_options)}

    def _get_engine(self):
        if self._engine is None:
            import vllm

            self._engine = vllm.LLM(**self.engine_options)
        return self._engine

    @staticmethod
    def _sampling(r: ChatRequest):
        import vllm

        return vllm.SamplingParams(n=r.n, max_tokens=r.max_tokens, temperature=r.temperature or 0.0,
                                   top_p=r.top_p if r.top_p is not None else 1.0, stop=r.stop, seed=r.seed,
                                   **_guided(r.json_schema()))

    async def complete(self, request: ChatRequest) -> Completion:
        return self.complete_batch([request])[0]

    def complete_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        engine = self._get_engine()
        start = time.perf_counter()
        outputs = engine.chat([r.chat() for r in requests], [self._sampling(r) for r in requests], use_tqdm=False)
        share = (time.perf_counter() - start) / max(1, len(requests))
        return [Completion(texts=[o.text for o in out.outputs], finish_reason=out.outputs[0].finish_reason,
                           prompt_tokens=len(out.prompt_token_ids or []),
                           completion_tokens=sum(len(o.token_ids) for o in out.outputs),
                           model=self.spec, latency_s=share) for out in outputs]


PARALLEL = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")
_RUN_SETTINGS = ("home", "concurrency", "timeout_s")  # handed to every provider; not engine options


def engine_kwargs(model: str, options: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `vllm.LLM` for `model` and the provider's options (parallel sizes checked)."""
    from factory.errors import BadInput

    kwargs = {k: v for k, v in options.items() if k not in _RUN_SETTINGS}
    for key in PARALLEL:
        value = kwargs.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInput(f"vllm: {key} must be a whole number >= 1, not {value!r} "
                           "(under `providers: vllm:` in $FACTORY_HOME/config.yaml)")
    return {"model": model, **kwargs}


def engine_gpus(kwargs: dict[str, Any]) -> int:
    """GPUs one engine spans: tensor x pipeline x data parallel (what its Ray worker reserves)."""
    gpus = 1
    for key in PARALLEL:
        gpus *= int(kwargs.get(key, 1))
    return gpus


def _guided(schema: dict[str, Any] | None) -> dict[str, Any]:
    """vLLM's structured-output (guided decoding) parameter for a JSON schema; its name moved across releases."""
    if schema is None:
        return {}
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=schema)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}
