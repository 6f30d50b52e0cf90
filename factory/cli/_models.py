"""Model specs and data references as the model-level commands (prune, merge, eval speculative) take them.

A model SPEC is a local directory, a Hub id, `hf:PATH_OR_ID`, or `local` (the embedded SmolLM2-135M-Instruct,
converted once to a safetensors cache under the factory home). Data REFs are store versions or files that
are read without being imported (so a bad file leaves the store untouched).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def model_source(spec: str, home: Path) -> str:
    """What `from_pretrained` loads for `spec` (the cache of the embedded model for `local`)."""
    from factory.llm.hf_local import resolve_model_source

    name = spec[3:] if spec.startswith("hf:") else spec
    if Path(name).expanduser().is_dir():  # checked by whoever loads it, for what it needs (merge: no tokenizer)
        return str(Path(name).expanduser())
    return str(resolve_model_source(name, home))


def read_rows(store: Any, ref: str, limit: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of a store version (NAME, NAME@VERSION, a version dir) or of a file / `seeds:NAME`, and where they
    came from, for lineage: {ref, name, version} or {ref, path, sha256}."""
    from factory.data import resolve_seed
    from factory.errors import FactoryError
    from factory.store.sources import read_source

    try:
        version = store.resolve(ref)
    except FactoryError:
        path = Path(resolve_seed(ref))
        if not path.exists():
            raise
        source = read_source(str(path))
        frame = source.data if limit is None else source.data.head(limit)
        return frame.to_dicts(), {"ref": ref, "path": str(path.absolute()), "sha256": source.fingerprint}
    frame = version.scan() if limit is None else version.scan().head(limit)
    return frame.collect().to_dicts(), {"ref": version.ref, "name": version.name, "version": version.version}
