"""`factory datasets import`: bring outside data into the store as a version.

The version id hashes the source's content fingerprint, the column map and the format, so importing
the same file twice gives the same version (and writes nothing the second time).
"""

from __future__ import annotations

from factory.errors import BadInput
from factory.store.manifest import StageInfo
from factory.store.sources import apply_map, read_source, require_columns
from factory.store.store import DatasetVersion, Store

IMPORT_STAGE = StageInfo(kind="import", name="import", version="1")


def import_dataset(store: Store, source: str, name: str, mapping: dict[str, str] | None = None,
                   fmt: str | None = None, split: str = "train", subset: str | None = None,
                   require: list[str] | None = None) -> tuple[DatasetVersion, bool]:
    """Import `source` as a version of `name`. Returns (version, created) — created is False on a re-import."""
    src = read_source(source, fmt, split=split, subset=subset)
    df = apply_map(src.data, mapping or {}, source)
    if not df.columns:  # `{}` on every line: a version no stage, export or viewer can use
        raise BadInput(f"{source}: no columns to store (every row is an empty object)")
    if require:
        require_columns(df.columns, require, source)
    config = {"format": src.format, "fingerprint": src.fingerprint, "map": dict(sorted((mapping or {}).items()))}
    if src.format in ("hub", "arrow-dir"):
        config.update(split=split, subset=subset)
    with store.writer(name, stage=IMPORT_STAGE, config=config, extra={"source": src.location}) as w:
        if w.exists:
            store.set_latest(name, w.version)
            return w.existing, False
        w.write(df)
        return w.commit(counters={"rows_read": src.data.height}), True


def resolve_or_import(store: Store, ref: str, fallback_name: str = "data") -> DatasetVersion:
    """A stored version, or a file (or `seeds:NAME`) imported on the fly, so lineage starts at its content."""
    from pathlib import Path

    from factory.data import resolve_seed
    from factory.errors import FactoryError

    try:
        return store.resolve(ref)
    except FactoryError:
        path = Path(resolve_seed(ref))
        if not path.is_file():
            raise
        return import_dataset(store, str(path), path.stem.replace("_", "-") or fallback_name)[0]
