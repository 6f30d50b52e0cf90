"""What the version, lineage, diff and charts pages compute from the store (no HTML here).

Names and versions from a request are checked before any path is built from them: a dataset name with
`check_name`, a version as hex. Paths to version directories, which `Store.resolve` also accepts, are never
taken from a request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput
from factory.secrets import redact
from factory.store import DatasetVersion, Store, check_name

if TYPE_CHECKING:
    import polars as pl

_HEX = re.compile(r"^[0-9a-f]{1,64}$")
SAMPLE = 20
CHART_ROWS = 100_000
MAX_DIFF_BYTES = 256 * 2**20
LENGTH_COLUMNS = ("instruction", "input", "response", "prompt", "chosen", "rejected", "text")


class NotFound(LookupError):
    """A well-formed name or version that the store does not hold (404)."""


def get_version(store: Store, name: str, version: str) -> DatasetVersion:
    check_name(name)
    if not _HEX.match(version):
        raise BadInput(f"invalid version {version[:40]!r}: versions are hex ids")
    found = [v for v in store.versions(name) if v.version.startswith(version)]
    if len(found) != 1:
        raise NotFound(f"no version {version!r} of {name!r}" if not found else f"{version!r} is ambiguous")
    return found[0]


def get_ref(store: Store, ref: str) -> DatasetVersion:
    """`NAME` or `NAME@VERSION` from a query string."""
    name, _, version = ref.strip().partition("@")
    check_name(name)
    if version:
        return get_version(store, name, version)
    latest = store.latest(name)
    if latest is None:
        raise NotFound(f"unknown dataset {name!r}")
    return latest


def summaries(store: Store) -> list[dict[str, Any]]:
    out = []
    for name in store.names():
        versions = store.versions(name)
        latest = store.latest(name)
        if latest is None:
            continue
        out.append({"name": name, "versions": len(versions), "latest": latest,
                    "usd": sum(v.manifest.cost.usd for v in versions)})
    return out


def safe_manifest(version: DatasetVersion) -> dict[str, Any]:
    """The manifest as shown: redacted again on the way out (an old or hand-edited manifest may hold a key)."""
    return redact(version.manifest.model_dump(mode="json"))


# -- lineage ------------------------------------------------------------------------------------------
def lineage(store: Store, version: DatasetVersion) -> dict[str, Any]:
    """The upstream tree (no cycles: a version id hashes its inputs' ids)."""
    def node(name: str, ver: str) -> dict[str, Any]:
        v = store.get(name, ver) if _HEX.match(ver) else None
        if v is None:
            return {"name": name, "version": ver, "missing": True, "inputs": []}
        m = v.manifest
        return {"name": name, "version": ver, "stage": m.stage.label(), "rows": m.rows, "created": m.created,
                "counters": m.counters, "cost": m.cost.model_dump(), "config": redact(m.config),
                "inputs": [node(i.name, i.version) for i in m.inputs]}

    return node(version.name, version.version)


def flatten(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The tree's nodes, upstream first, each once."""
    seen, out = set(), []

    def walk(n: dict[str, Any]) -> None:
        for child in n["inputs"]:
            walk(child)
        key = (n["name"], n["version"])
        if key not in seen:
            seen.add(key)
            out.append(n)

    walk(tree)
    return out


# -- diff ---------------------------------------------------------------------------------------------
@dataclass
class DiffView:
    summary: Any
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)


def diff(old: DatasetVersion, new: DatasetVersion, key: str | None) -> DiffView:
    """Counts from the store's own diff, plus a sample of the rows added, removed and changed."""
    import polars as pl

    from factory.store.diff import diff_versions

    size = sum(f.bytes for v in (old, new) for f in v.manifest.files)
    if size > MAX_DIFF_BYTES:
        # a diff holds both versions in memory, several times their Parquet size (90 MB of Parquet: 860 MB)
        raise BadInput(f"{old.ref} and {new.ref} are {size / 2**20:,.0f} MiB of Parquet, more than the viewer diffs "
                       f"per request ({MAX_DIFF_BYTES // 2**20} MiB): use `factory datasets diff {old.ref} {new.ref}`")
    a, b = old.read(), new.read()
    if key is not None and (key not in a.columns or key not in b.columns):
        raise BadInput(f"key={key[:60]!r}: not a column of both versions")
    d = diff_versions(a, b, key=key)
    view = DiffView(summary=d)
    shared = [c for c in a.columns if c in b.columns and c not in d.types_changed and c != d.key]
    if d.key:
        ka, kb = a[d.key].cast(pl.String), b[d.key].cast(pl.String)
        view.removed = a.filter(~ka.is_in(kb.implode())).head(SAMPLE).to_dicts()
        view.added = b.filter(~kb.is_in(ka.implode())).head(SAMPLE).to_dicts()
        if shared:
            ha = a.select(pl.col(d.key).cast(pl.String).alias("k"), _hash(a, shared).alias("h"))
            hb = b.select(pl.col(d.key).cast(pl.String).alias("k"), _hash(b, shared).alias("h"))
            moved = ha.join(hb, on="k", suffix="_new").filter(pl.col("h") != pl.col("h_new"))["k"].head(SAMPLE)
            for k in moved.to_list():
                view.changed.append((a.filter(ka == k).row(0, named=True), b.filter(kb == k).row(0, named=True)))
    elif shared:
        ha, hb = _hash(a, shared), _hash(b, shared)
        view.removed = a.filter(~ha.is_in(hb.implode())).head(SAMPLE).to_dicts()
        view.added = b.filter(~hb.is_in(ha.implode())).head(SAMPLE).to_dicts()
    return view


def _hash(df: pl.DataFrame, columns: list[str]) -> pl.Series:
    return df.select(columns).hash_rows(seed=0)


# -- charts -------------------------------------------------------------------------------------------
def score_columns(schema: pl.Schema) -> list[str]:
    return [c for c, t in schema.items() if t.is_numeric() and "score" in c.lower()]


def chart_data(store: Store, version: DatasetVersion) -> dict[str, Any]:
    """Judge score histograms, word-length distributions and per-stage counters and costs along the lineage."""
    import polars as pl

    schema = version.scan().collect_schema()

    def first_rows() -> pl.LazyFrame:
        # the histograms read the first CHART_ROWS rows (a fresh scan each: only those row groups are decoded);
        # reading every row made the page take 7 s for a million rows, and grow with the version
        return version.scan().head(CHART_ROWS)

    scores = {c: first_rows().select(pl.col(c)).collect()[c].drop_nulls().to_list() for c in score_columns(schema)}
    lengths = {}
    for c in [c for c in LENGTH_COLUMNS if schema.get(c) == pl.String]:
        counts = first_rows().select(pl.col(c).fill_null("").str.count_matches(r"\S+")).collect()[c]
        lengths[c] = counts.to_list()
    lf = version.scan()
    errors = {c: int(lf.select(pl.col(c).is_not_null().sum()).collect().item())
              for c in schema if c == "error" or c.endswith("_error")}
    stages = flatten(lineage(store, version))
    sampled = CHART_ROWS if version.manifest.rows > CHART_ROWS else None
    return {"scores": scores, "lengths": lengths, "errors": errors, "sampled": sampled,
            "stages": [s for s in stages if not s.get("missing")]}
