"""SLERP merging: the formula against an independent reference, the endpoints, the arc, and `factory merge slerp`.

The reference below is written from the textbook formula in numpy float64 (not from our code): the point a
fraction t along the great circle from a to b, linear where the two are (nearly) parallel.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from factory.cli.main import cli
from factory.trainers.slerp import slerp


def reference_slerp(t: float, a: np.ndarray, b: np.ndarray, threshold: float = 0.9995) -> np.ndarray:
    x, y = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    cos = float(np.dot(x / np.linalg.norm(x), y / np.linalg.norm(y)))
    if abs(cos) > threshold:
        return ((1 - t) * x + t * y).reshape(a.shape)
    theta = math.acos(max(-1.0, min(1.0, cos)))
    return ((math.sin((1 - t) * theta) * x + math.sin(t * theta) * y) / math.sin(theta)).reshape(a.shape)


def angle(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.double().flatten(), y.double().flatten()
    return math.acos(max(-1.0, min(1.0, float(torch.dot(x, y) / (x.norm() * y.norm())))))


def test_endpoints_and_the_midpoint_on_the_arc():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    b = b * (a.norm() / b.norm())  # equal norms: the arc between them is a circle of that radius
    assert torch.allclose(slerp(0.0, a, b), a, atol=1e-6)
    assert torch.allclose(slerp(1.0, a, b), b, atol=1e-6)
    mid = slerp(0.5, a, b)
    theta = angle(a, b)
    assert theta > 0.5  # random directions: far from the linear fallback
    assert math.isclose(float(mid.norm()), float(a.norm()), rel_tol=1e-5)  # on the sphere, not inside it
    assert math.isclose(angle(mid, a), theta / 2, rel_tol=1e-5)
    assert math.isclose(angle(mid, b), theta / 2, rel_tol=1e-5)
    lerp = (a + b) / 2
    assert float(lerp.norm()) < float(mid.norm()) - 0.1  # what SLERP is for: linear averaging shrinks the norm


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_matches_the_reference_on_unequal_norms(t):
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(7, 5, generator=gen), 3 * torch.randn(7, 5, generator=gen)
    expected = reference_slerp(t, a.numpy(), b.numpy())
    assert np.allclose(slerp(t, a, b).numpy(), expected, atol=1e-5)


def test_nearly_parallel_tensors_interpolate_linearly_and_dtype_is_kept():
    a = torch.linspace(-1, 1, 50, dtype=torch.bfloat16)
    b = 2 * a
    out = slerp(0.25, a, b)
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), (0.75 * a.float() + 0.25 * b.float()), atol=1e-2)


def test_matches_mergekit_where_installed():
    mergekit = pytest.importorskip("mergekit.merge_methods.slerp")
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(6, 10, generator=gen), torch.randn(6, 10, generator=gen)
    # mergekit 0.1.5 interpolates each output row separately; as one row it is the whole-tensor SLERP we do
    theirs = mergekit.slerp(torch.tensor([0.3]), a.reshape(1, -1), b.reshape(1, -1)).reshape(a.shape)
    assert torch.allclose(slerp(0.3, a, b), theirs, atol=1e-6)


@pytest.mark.parametrize("t", ["0.3", "0,0.5,1", "0.2,0.9"])
def test_whole_checkpoints_match_a_mergekit_merge_where_installed(tmp_path, t):
    """`factory merge slerp` against mergekit's own merge of the same two checkpoints: every tensor, with a
    constant t and with gradient lists over the layers."""
    pytest.importorskip("mergekit.merge")
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from factory.testing.tiny import build_tiny_llama

    a, b = (build_tiny_llama(tmp_path / name, num_layers=4, seed=seed) for name, seed in (("a", 0), ("b", 1)))
    values = [float(v) for v in t.split(",")]
    config = {"merge_method": "slerp", "base_model": str(a), "dtype": "float32",
              "slices": [{"sources": [{"model": str(m), "layer_range": [0, 4]} for m in (a, b)]}],
              "parameters": {"t": values[0] if len(values) == 1 else [{"value": values}]}}
    run_merge(MergeConfiguration.model_validate(config), str(tmp_path / "mergekit"),
              options=MergeOptions(lazy_unpickle=False, quiet=True))
    result = invoke(tmp_path / "home", "merge", "slerp", str(a), str(b), "--t", t, "--out", str(tmp_path / "ours"))
    assert result.exit_code == 0, result.output
    theirs, ours = weights(tmp_path / "mergekit"), weights(tmp_path / "ours")
    assert theirs.keys() == ours.keys()
    for name in theirs:
        assert torch.allclose(ours[name], theirs[name], atol=1e-6), name
    q = "model.layers.1.self_attn.q_proj.weight"
    assert not torch.allclose(ours[q], weights(a)[q]) and not torch.allclose(ours[q], weights(b)[q])


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    from factory.testing.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("slerp")
    return build_tiny_llama(root / "a", seed=0), build_tiny_llama(root / "b", seed=1)


def invoke(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_merge_cli_endpoints_midpoint_and_lineage(pair, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    a, b = pair
    wa, wb = weights(a), weights(b)
    for t, expected in (("0", wa), ("1", wb)):
        out = tmp_path / f"t{t}"
        result = invoke(tmp_path / "home", "merge", "slerp", str(a), str(b), "--t", t, "--out", str(out))
        assert result.exit_code == 0, result.output
        merged = weights(out)
        assert merged.keys() == expected.keys()
        assert all(torch.allclose(merged[k], expected[k], atol=1e-6) for k in expected)

    out = tmp_path / "mid"
    result = invoke(tmp_path / "home", "merge", "slerp", str(a), str(b), "--out", str(out))
    assert result.exit_code == 0, result.output
    merged = weights(out)
    for name, tensor in merged.items():
        assert np.allclose(tensor.numpy(), reference_slerp(0.5, wa[name].numpy(), wb[name].numpy()), atol=1e-5), name
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(merged[q], wa[q]) and not torch.allclose(merged[q], wb[q])
    doc = json.loads((out / "factory.json").read_text())
    assert doc["method"] == "slerp" and doc["config"]["t"] == [0.5]
    assert [p["model"] for p in doc["parents"]] == [str(a), str(b)]
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        ids = model.generate(**tok("Hello", return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert ids.shape[1] > 1


def test_gradient_goes_from_a_at_the_first_layer_to_b_at_the_last(pair, tmp_path):
    a, b = pair
    out = tmp_path / "gradient"
    result = invoke(tmp_path / "home", "merge", "slerp", str(a), str(b), "--t", "0,1", "--out", str(out))
    assert result.exit_code == 0, result.output
    merged, wa, wb = weights(out), weights(a), weights(b)
    first, last = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"
    assert torch.allclose(merged[first], wa[first], atol=1e-6)
    assert torch.allclose(merged[last], wb[last], atol=1e-6)
    assert torch.allclose(merged["model.embed_tokens.weight"], wa["model.embed_tokens.weight"], atol=1e-6)


def test_shape_mismatch_names_the_first_tensor_and_writes_nothing(pair, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM

    a, _ = pair
    other = tmp_path / "wider"
    config = AutoConfig.from_pretrained(a)
    config.intermediate_size = 96
    AutoModelForCausalLM.from_config(config).save_pretrained(other)
    out = tmp_path / "out"
    result = invoke(tmp_path / "home", "merge", "slerp", str(a), str(other), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert "tensor model.layers.0.mlp.down_proj.weight has shape [64, 128]" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not out.with_name("out.partial").exists()


def test_different_architecture_and_bad_t_are_refused(pair, tmp_path):
    from factory.testing.tiny import build_tiny_llama

    a, _ = pair
    deeper = build_tiny_llama(tmp_path / "deeper", num_layers=3)
    result = invoke(tmp_path / "home", "merge", "slerp", str(a), str(deeper), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "different num_hidden_layers (2 vs 3)" in result.output
    result = invoke(tmp_path / "home", "merge", "slerp", str(a), str(a), "--t", "1.5", "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "[0, 1]" in result.output
    assert not (tmp_path / "o").exists()
