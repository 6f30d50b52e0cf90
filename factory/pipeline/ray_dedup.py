"""Near dedup (MinHash LSH) on Ray Data: the same drop mask as `minhash.near_duplicates`, computed in three steps.

1. Signatures per block: `map_batches` hashes each block's shingles and computes its rows' MinHash signatures and
   LSH band keys (the same seeds as the local path, so the same numbers), in parallel tasks.
2. LSH buckets by a shuffle: every (band, key, row) goes to the partition `hash(band, key) % P`
   (`groupby("part").map_groups`); within a partition, each bucket pairs its rows with its smallest row (the local
   path's leader), vectorised with numpy. Only the candidate pairs come back to the driver.
3. The driver fetches the signatures of the rows in a pair (a filter over the materialised signatures), keeps the
   pairs that agree on >= `threshold` of their positions, and labels clusters (`minhash.clusters_drop`): n-sized
   arrays, cheap next to steps 1 and 2.

What grows with the table (shingling, hashing, the band shuffle) runs on the cluster; what the driver holds is the
candidate pairs and the signatures of rows that have a near copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from factory.pipeline.minhash import band_keys, bands_for, clusters_drop, shingle_hashes, signatures

_MIX = np.uint64(0x9E3779B97F4A7C15)


def _sign(batch: dict[str, np.ndarray], num_perm: int, shingle: int, bands: int, r: int) -> dict[str, np.ndarray]:
    import polars as pl

    sig = signatures(*shingle_hashes(pl.Series(batch["text"], dtype=pl.String), shingle), num_perm)
    return {"row": batch["row"], "sig": sig, "keys": band_keys(sig, bands, r)}


def _entries(batch: dict[str, np.ndarray], parts: int) -> dict[str, np.ndarray]:
    keys = batch["keys"]
    n, bands = keys.shape
    band = np.tile(np.arange(bands, dtype=np.uint64), n)
    key = keys.reshape(-1)
    return {"part": ((key ^ (band * _MIX)) % np.uint64(parts)).astype(np.int64), "band": band.astype(np.int64),
            "key": key, "row": np.repeat(batch["row"], bands)}


def _pairs(group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    band, key, row = group["band"], group["key"], group["row"]
    order = np.lexsort((row, key, band))
    band, key, row = band[order], key[order], row[order]
    first = np.r_[True, (band[1:] != band[:-1]) | (key[1:] != key[:-1])]
    leader = row[np.maximum.accumulate(np.where(first, np.arange(len(row)), 0))]
    return {"a": leader[~first], "b": row[~first]}


def _with_rows(batch: dict[str, np.ndarray], wanted: np.ndarray) -> dict[str, np.ndarray]:
    keep = np.isin(batch["row"], wanted)
    return {"row": batch["row"][keep], "sig": batch["sig"][keep]}


def near_duplicates_ray(texts: list[str] | Any, threshold: float = 0.8, num_perm: int = 128, shingle: int = 3,
                        blocks: int = 8, parts: int = 8) -> np.ndarray:
    """Boolean mask of rows to drop, as `minhash.near_duplicates`; Ray must be initialised (`ray.init`)."""
    import pyarrow as pa
    import ray

    n = len(texts)
    if n == 0:
        return np.zeros(0, dtype=bool)
    bands, r = bands_for(threshold, num_perm)
    table = pa.table({"row": np.arange(n, dtype=np.int64), "text": pa.array(list(texts), pa.string())})
    step = -(-n // blocks)
    ds = ray.data.from_arrow([table.slice(i, step) for i in range(0, n, step)])
    signed = ds.map_batches(_sign, fn_kwargs={"num_perm": num_perm, "shingle": shingle, "bands": bands, "r": r},
                            batch_format="numpy", batch_size=None).materialize()
    candidates = (signed.map_batches(_entries, fn_kwargs={"parts": parts}, batch_format="numpy", batch_size=None)
                  .groupby("part").map_groups(_pairs, batch_format="numpy"))
    found = [np.stack([b["a"], b["b"]], axis=1) for b in candidates.iter_batches(batch_format="numpy") if len(b["a"])]
    pairs = np.unique(np.concatenate(found), axis=0) if found else np.empty((0, 2), dtype=np.int64)
    sig = np.zeros((n, num_perm), dtype=np.uint32)  # filled only where a row is in a candidate pair
    if len(pairs):
        wanted = np.unique(pairs)
        for b in signed.map_batches(_with_rows, fn_args=(wanted,), batch_format="numpy",
                                    batch_size=None).iter_batches(batch_format="numpy"):
            sig[b["row"]] = b["sig"]
    return clusters_drop(n, pairs, sig[pairs[:, 0]], sig[pairs[:, 1]], threshold)
