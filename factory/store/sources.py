"""Read data from outside the store: JSONL, JSON, CSV, Parquet, a `datasets` save_to_disk dir, or the Hub.

`read_source` returns the rows as a polars DataFrame plus a `fingerprint` that changes whenever the
content does (a file's sha256, a Hub dataset's fingerprint), which names the imported version.
"""

from __future__ import annotations

import codecs
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput, FactoryError
from factory.hashing import file_digest
from factory.records import HUB_ID

if TYPE_CHECKING:
    import polars as pl

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "text", "arrow-dir", "hub")
_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
        ".parquet": "parquet", ".pq": "parquet", ".txt": "text"}


@dataclass
class Source:
    data: pl.DataFrame
    format: str
    fingerprint: str
    location: str


def detect_format(source: str) -> str:
    path = Path(source)
    if path.is_dir():
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return "arrow-dir"
        if any(path.glob("**/*.parquet")):
            return "parquet"
        raise BadInput(f"{source}: a directory, but neither a `datasets` save_to_disk dir nor Parquet files")
    if path.suffix.lower() in _EXT:
        if not path.exists():
            raise BadInput(f"no such file: {source}")
        return _EXT[path.suffix.lower()]
    if path.exists():
        raise BadInput(f"{source}: unknown file type {path.suffix!r}; pass --format ({', '.join(FORMATS[:6])})")
    if HUB_ID.match(source):
        return "hub"
    raise BadInput(f"no such file: {source}")


def read_source(source: str, fmt: str | None = None, split: str = "train", subset: str | None = None) -> Source:
    fmt = fmt or detect_format(source)
    if fmt == "hub":
        return _read_hub(source, split, subset)
    path = Path(source)
    if not path.exists():
        raise BadInput(f"no such file: {source}")
    reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "tsv": _read_tsv,
              "parquet": _read_parquet, "text": _read_text, "arrow-dir": lambda p: _read_arrow_dir(p, split)}.get(fmt)
    if reader is None:
        raise BadInput(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    import polars as pl

    with ThreadPoolExecutor(1) as pool:  # hashing releases the GIL: it overlaps with parsing
        fingerprint = pool.submit(file_digest, path)
        try:
            df = reader(path)
        except pl.exceptions.PolarsError as exc:  # e.g. `[]`: nothing to infer a table from
            raise BadInput(f"{path}: cannot read it as {fmt}: {str(exc).splitlines()[0]}") from None
        _check_storable(df, path)
        return Source(df, fmt, fingerprint.result(), str(path))


def _check_storable(df: pl.DataFrame, path: Path) -> None:
    """Parquet cannot hold a struct without fields (`{"a": {}}` in every row): say so, naming the column."""
    import polars as pl

    def empty_struct(dtype: pl.DataType) -> bool:
        if isinstance(dtype, pl.Struct):
            return not dtype.fields or any(empty_struct(f.dtype) for f in dtype.fields)
        if isinstance(dtype, pl.List | pl.Array):
            return empty_struct(dtype.inner)
        return False

    for name, dtype in df.schema.items():
        if empty_struct(dtype):
            raise BadInput(f"{path}: column {name!r} holds only empty objects ({{}}), which cannot be stored")


def _read_jsonl(path: Path) -> pl.DataFrame:
    import polars as pl

    if path.stat().st_size == 0:
        raise BadInput(f"{path}: empty file")
    source: Path | io.BytesIO = path
    with open(path, "rb") as fh:
        if fh.read(3) == codecs.BOM_UTF8:  # Notepad and PowerShell start UTF-8 with a BOM; polars chokes on it
            source = io.BytesIO(fh.read())
    try:
        return pl.read_ndjson(source, infer_schema_length=None)
    except Exception as exc:  # polars does not say which line; find it ourselves
        line = _first_bad_json_line(path)
        if line:
            raise BadInput(f"{path}:{line[0]}: {line[1]}") from None
        raise BadInput(f"{path}: cannot read as JSON Lines ({str(exc).splitlines()[0]})") from None


def _first_bad_json_line(path: Path) -> tuple[int, str] | None:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return number, f"malformed JSON ({getattr(exc, 'msg', None) or getattr(exc, 'reason', exc)})"
            except RecursionError:
                return number, "JSON nested too deeply"
            if not isinstance(value, dict):
                return number, f"expected a JSON object, got {type(value).__name__}"
    return None


def _read_json(path: Path) -> pl.DataFrame:
    import polars as pl

    try:
        value: Any = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON Lines under a .json name
            return _read_jsonl(path)
        raise BadInput(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise BadInput(f"{path}: JSON nested too deeply") from None
    if isinstance(value, dict):  # {"data": [...]} or {"col": [values]}
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(value) == 1 and lists and all(isinstance(r, dict) for r in lists[0]):
            value = lists[0]
        elif lists and len(lists) == len(value):
            return pl.DataFrame(value)
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise BadInput(f"{path}: expected a JSON array of objects")
    return pl.from_dicts(value, infer_schema_length=None)


def _read_csv(path: Path, separator: str = ",") -> pl.DataFrame:
    import polars as pl

    try:
        return pl.read_csv(path, separator=separator, infer_schema_length=10000)
    except pl.exceptions.PolarsError as exc:
        raise BadInput(f"{path}: cannot read as CSV ({str(exc).splitlines()[0]})") from None


def _read_tsv(path: Path) -> pl.DataFrame:
    return _read_csv(path, "\t")


def _read_parquet(path: Path) -> pl.DataFrame:
    import polars as pl

    files = sorted(path.glob("**/*.parquet")) if path.is_dir() else [path]
    try:
        return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise BadInput(f"{path}: cannot read as Parquet ({str(exc).splitlines()[0]})") from None


def _read_text(path: Path) -> pl.DataFrame:
    """One row per non-empty line, in a `text` column (topic lists, seed instructions)."""
    import polars as pl

    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason})") from None
    return pl.DataFrame({"text": [line for line in lines if line]}, schema={"text": pl.String})


def _read_arrow_dir(path: Path, split: str) -> pl.DataFrame:
    import datasets
    import polars as pl

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError:  # `datasets` says so for any folder that lacks its state files
        raise BadInput(f"{path}: not a `datasets` save_to_disk directory (no state.json or "
                       "dataset_dict.json)") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise BadInput(f"{path}: no split {split!r} (splits: {', '.join(ds)}); pass --split")
        ds = ds[split]
    return pl.from_arrow(ds.with_format("arrow")[:])


def _read_hub(repo_id: str, split: str, subset: str | None) -> Source:
    """A Hub dataset through the real `datasets` loading code (cached by `datasets` as usual)."""
    import datasets
    import polars as pl

    try:
        ds = datasets.load_dataset(repo_id, subset, split=split)
    except Exception as exc:  # the datasets library raises many types for "cannot get it"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FactoryError(f"cannot load Hub dataset {repo_id!r} (split {split!r}): {first}") from None
    fingerprint = f"hub:{repo_id}:{subset}:{split}:{ds._fingerprint}"
    return Source(pl.from_arrow(ds.with_format("arrow")[:]), "hub", fingerprint, repo_id)


def apply_map(df: pl.DataFrame, mapping: dict[str, str], source: str) -> pl.DataFrame:
    """Rename columns: `{new: old}`. Every `old` must exist."""
    missing = [old for old in mapping.values() if old not in df.columns]
    if missing:
        raise BadInput(f"--map: column {missing[0]!r} not in {source} (columns: {', '.join(df.columns)})")
    sources = list(mapping.values())
    twice = next((old for old in sources if sources.count(old) > 1), None)
    if twice is not None:  # a rename moves a column: the second name would silently get nothing
        raise BadInput(f"--map: column {twice!r} is mapped to more than one name")
    renamed = {old: new for new, old in mapping.items() if old != new}
    kept = [c for c in df.columns if c not in renamed]
    clash = next((new for new in renamed.values() if new in kept), None)
    if clash is not None:
        raise BadInput(f"--map: {source} already has a column {clash!r}; rename that one too "
                       f"(--map OTHER={clash}) or pick another name")
    return df.rename(renamed)


def parse_map(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        new, sep, old = pair.partition("=")
        if not sep or not new.strip() or not old.strip():
            raise BadInput(f"--map expects new=old, got {pair!r}")
        if new.strip() in mapping:
            raise BadInput(f"--map: column {new.strip()!r} is given twice ({mapping[new.strip()]} and {old.strip()})")
        mapping[new.strip()] = old.strip()
    return mapping


def _holds(dtype: Any, kind: str) -> bool:
    """Whether a polars dtype holds what a stage type name says (an all-null column holds anything)."""
    import polars as pl

    if dtype == pl.Null:
        return True
    if kind == "str":
        return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)
    if kind in ("list[str]", "list[message]"):
        if not isinstance(dtype, pl.List | pl.Array):
            return False
        inner = dtype.inner
        if inner == pl.Null:
            return True
        if kind == "list[str]":
            return inner == pl.String
        return isinstance(inner, pl.Struct) and {f.name: f.dtype for f in inner.fields}.get("role") == pl.String \
            and {f.name: f.dtype for f in inner.fields}.get("content") in (pl.String, pl.Null)
    return True  # numbers, json: read as they come


_KINDS = {"str": "text", "list[str]": "a list of texts", "list[message]": "a list of {role, content} messages"}


def require_types(schema: Any, wanted: dict[str, str], what: str) -> None:
    """Every column of `wanted` (name -> "str", "list[str]", "list[message]", or "str|list[message]") that `schema`
    has holds that type; the first that does not is a one-line error naming it, before anything runs."""
    for name, kind in wanted.items():
        dtype = schema.get(name)
        if dtype is None or any(_holds(dtype, k) for k in kind.split("|")):
            continue
        expected = " or ".join(_KINDS.get(k, k) for k in kind.split("|"))
        raise BadInput(f"{what}: column {name!r} holds {dtype}, not {expected}; convert it, or import another "
                       f"column under this name (`factory datasets import ... --map {name}=COLUMN`)")


def require_columns(columns: list[str], needed: list[str], what: str, hint: str = "") -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        suffix = f"; {hint}" if hint else f"; rename with --map {missing[0]}=SOURCE_COLUMN"
        raise BadInput(f"{what} lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                       f" (has: {', '.join(columns)}){suffix}")
