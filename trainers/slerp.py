"""SLERP merging of two checkpoints of one architecture (`factory merge slerp A B --t 0.5 --out DIR`).

Tensor by tensor, in float32 whatever the stored dtype: the two tensors are flattened, the angle θ between
them is taken from their normalized dot product, and the result is
sin((1-t)θ)/sin θ · A + sin(tθ)/sin θ · B, the point a fraction t along the great circle from A to B. Where
the tensors are nearly parallel (|cos θ| > 0.9995) that formula is ill-conditioned and linear interpolation,
its limit, is used instead (as mergekit does). The result is stored in A's dtype.

`t` is one number, or a mergekit-style gradient: a list of values spread evenly over the decoder layers and
interpolated linearly between them (layer i of L sits at i/(L-1)); tensors outside the layer stack
(embeddings, final norm, LM head) take the gradient's first value, as in mergekit.

Everything is checked before anything is written: same architecture and layer count, the same tensor names,
and the same shapes, naming the first tensor that differs.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from factory.errors import BadInput
from factory.hashing import short_digest
from factory.records import CheckpointRecord
from factory.trainers import checkpoint

METHOD = "slerp"
DOT_THRESHOLD = 0.9995
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
SKIP_FILES = {checkpoint.FACTORY_JSON, checkpoint.TRAINING_ARGS_JSON, "training_args.bin",
              "model.safetensors.index.json", "pytorch_model.bin.index.json"}
_LAYER = re.compile(r"\.layers\.(\d+)\.")


def slerp(t: float, a: Any, b: Any, dot_threshold: float = DOT_THRESHOLD, eps: float = 1e-8) -> Any:
    """Spherical linear interpolation from `a` (t=0) to `b` (t=1), computed in float32, returned in a's dtype."""
    import torch

    v0, v1 = a.to(torch.float32).flatten(), b.to(torch.float32).flatten()
    n0, n1 = torch.linalg.vector_norm(v0), torch.linalg.vector_norm(v1)
    if n0 <= eps or n1 <= eps:  # a zero tensor has no direction
        return ((1 - t) * v0 + t * v1).reshape(a.shape).to(a.dtype)
    dot = torch.clamp(torch.dot(v0 / n0, v1 / n1), -1.0, 1.0)
    if abs(float(dot)) > dot_threshold:
        out = (1 - t) * v0 + t * v1
    else:
        theta = torch.arccos(dot)
        sin_theta = torch.sin(theta)
        out = torch.sin((1 - t) * theta) / sin_theta * v0 + torch.sin(t * theta) / sin_theta * v1
    return out.reshape(a.shape).to(a.dtype)


def parse_t(text: str | float | list[float]) -> list[float]:
    """`0.5` -> [0.5]; `0,0.5,1` -> a gradient over the layers. Every value in [0, 1]."""
    if isinstance(text, (int, float)):
        values = [float(text)]
    elif isinstance(text, list):
        values = [float(v) for v in text]
    else:
        try:
            values = [float(part) for part in str(text).replace(" ", "").strip("[]").split(",") if part]
        except ValueError:
            raise BadInput(f"--t must be a number or a comma-separated list of numbers, got {text!r}") from None
    if not values or any(not (0.0 <= v <= 1.0) or math.isnan(v) for v in values):
        raise BadInput(f"--t values must lie in [0, 1], got {text!r}")
    return values


def t_for(name: str, gradient: list[float], num_layers: int) -> float:
    if len(gradient) == 1:
        return gradient[0]
    match = _LAYER.search(name)
    position = 0.0 if match is None else int(match.group(1)) / max(num_layers - 1, 1)
    scaled = position * (len(gradient) - 1)
    low = min(int(scaled), len(gradient) - 1)
    high = min(low + 1, len(gradient) - 1)
    return gradient[low] + (scaled - low) * (gradient[high] - gradient[low])


def weight_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise BadInput(f"{directory} has no .safetensors weights (SLERP reads safetensors checkpoints)")
    return files


def tensor_index(directory: Path) -> dict[str, tuple[Path, tuple[int, ...], str]]:
    """name -> (file, shape, dtype), read from the safetensors headers without loading any tensor."""
    from safetensors import safe_open

    index = {}
    for path in weight_files(directory):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():
                meta = f.get_slice(name)
                index[name] = (path, tuple(meta.get_shape()), meta.get_dtype())
    return index


def check_compatible(a: Path, b: Path) -> tuple[dict[str, Any], dict[str, tuple], dict[str, tuple]]:
    """Both directories hold checkpoints of one architecture with the same tensors; A's config is returned."""
    configs = []
    for directory in (a, b):
        path = directory / "config.json"
        if not path.is_file():
            raise BadInput(f"{directory} has no config.json: not a transformers checkpoint")
        configs.append(json.loads(path.read_text()))
    for key in ("model_type", "architectures", "num_hidden_layers", "hidden_size"):
        if configs[0].get(key) != configs[1].get(key):
            raise BadInput(f"cannot SLERP {a} and {b}: different {key} "
                           f"({configs[0].get(key)} vs {configs[1].get(key)})")
    ia, ib = tensor_index(a), tensor_index(b)
    for name in sorted(set(ia) | set(ib)):
        if name not in ib or name not in ia:
            where, other = (b, a) if name not in ib else (a, b)
            raise BadInput(f"cannot SLERP: tensor {name} is in {other} but not in {where}")
        if ia[name][1] != ib[name][1]:
            raise BadInput(f"cannot SLERP: tensor {name} has shape {list(ia[name][1])} in {a} but "
                           f"{list(ib[name][1])} in {b}")
    return configs[0], ia, ib


def merge_slerp(a: Path, b: Path, out_dir: Path, gradient: list[float], *, specs: tuple[str, str] | None = None,
                dot_threshold: float = DOT_THRESHOLD) -> dict[str, Any]:
    """Write the SLERP of checkpoints `a` and `b` to `out_dir` (which must be empty or new); return factory.json."""
    import torch
    from huggingface_hub import save_torch_state_dict
    from safetensors import safe_open

    config, ia, ib = check_compatible(a, b)
    num_layers = int(config.get("num_hidden_layers") or 1)
    merged: dict[str, Any] = {}
    handles: dict[Path, Any] = {}
    try:
        for name in sorted(ia):
            ta = _open(handles, ia[name][0], safe_open).get_tensor(name)
            tb = _open(handles, ib[name][0], safe_open).get_tensor(name)
            if not torch.is_floating_point(ta):  # integer buffers are not interpolated
                merged[name] = ta
                continue
            merged[name] = slerp(t_for(name, gradient, num_layers), ta, tb, dot_threshold)
    finally:
        handles.clear()
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in a.iterdir():  # config, tokenizer, chat template, generation config: A's
        if item.is_file() and item.name not in SKIP_FILES and not item.name.endswith(WEIGHT_SUFFIXES) \
                and not item.name.startswith(("prune-", "run.json")):
            shutil.copy2(item, out_dir / item.name)
    save_torch_state_dict(merged, str(out_dir))
    spec_a, spec_b = specs or (str(a), str(b))
    parents = [_parent(spec_a, a), _parent(spec_b, b)]
    cfg = {"a": spec_a, "b": spec_b, "t": gradient, "dot_threshold": dot_threshold}
    datasets = list({json.dumps(d, sort_keys=True): d for p in parents for d in p.pop("datasets")}.values())
    doc = checkpoint.record(method=METHOD, base_model=spec_a, adapter=False, datasets=datasets, config=cfg,
                            config_hash=short_digest(cfg), metrics={"tensors": len(merged)}, parents=parents)
    doc.write(out_dir)
    return doc.document()


def _open(handles: dict[Path, Any], path: Path, safe_open: Any) -> Any:
    if path not in handles:
        handles[path] = safe_open(str(path), framework="pt")
    return handles[path]


def _parent(spec: str, directory: Path) -> dict[str, Any]:
    doc = CheckpointRecord.find(directory)
    if doc is None:
        return {"model": spec, "path": str(directory.absolute()), "method": None, "config_hash": None, "datasets": []}
    return {"model": spec, "path": str(directory.absolute()), "method": doc.method, "config_hash": doc.config_hash,
            "datasets": [d.model_dump() for d in doc.datasets]}
