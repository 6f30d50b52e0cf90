"""`vllm:` engine options without vLLM or a GPU: the parallel sizes reach `vllm.LLM`'s keyword arguments, bad ones
are a one-line error, a Ray worker asks for the GPUs one engine spans, and the GPU path fails with a clear message."""

from __future__ import annotations

import pytest

from factory.errors import BadInput, FactoryError
from factory.llm import load_llm
from factory.llm.vllm import engine_gpus, engine_kwargs, require_cuda


def test_parallel_sizes_pass_through_to_the_engine():
    options = {"tensor_parallel_size": 4, "pipeline_parallel_size": 2, "data_parallel_size": 1,
               "gpu_memory_utilization": 0.8, "concurrency": 64, "timeout_s": 120, "home": "/h"}
    kwargs = engine_kwargs("meta-llama/Llama-3.1-70B-Instruct", options)
    assert kwargs == {"model": "meta-llama/Llama-3.1-70B-Instruct", "tensor_parallel_size": 4,
                      "pipeline_parallel_size": 2, "data_parallel_size": 1, "gpu_memory_utilization": 0.8}
    assert engine_gpus(kwargs) == 8  # one Ray worker reserves tp x pp x dp GPUs for its engine
    assert engine_gpus(engine_kwargs("m", {})) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_a_bad_parallel_size_is_one_line(bad):
    with pytest.raises(BadInput, match=r"tensor_parallel_size must be a whole number >= 1"):
        engine_kwargs("m", {"tensor_parallel_size": bad})


def test_the_gpu_path_fails_clearly_without_vllm_or_cuda(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("providers:\n  vllm: {tensor_parallel_size: 2}\n")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(FactoryError, match=r'vllm is not installed.*pip install "factory\[gpu\]"'):
            load_llm("vllm:some/model", home=home)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(FactoryError, match="vllm: needs a CUDA GPU and none is visible"):
            require_cuda("vllm:")
