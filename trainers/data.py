"""Dataset versions as `datasets.Dataset`s in TRL's formats, with the columns checked first.

SFT reads TRL's conversational format (`messages`); DPO reads `prompt`/`chosen`/`rejected` (strings, or
lists of messages). A version in another shape is refused before anything is loaded, naming the missing
columns and the stage or command that produces the right ones. Rows a stage kept as failures (an `error`,
or an empty training column) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput
from factory.store.sources import require_columns, require_types

if TYPE_CHECKING:
    from factory.store import DatasetVersion


@dataclass(frozen=True)
class Format:
    """The columns a method trains on, and where to get them when a dataset lacks them."""

    method: str
    columns: tuple[str, ...]
    messages_only: bool  # True: lists of {role, content} only; False: text is fine too


SFT = Format("sft", ("messages",), messages_only=True)
DPO = Format("dpo", ("prompt", "chosen", "rejected"), messages_only=False)


def conversion_hint(fmt: Format, ref: str, columns: list[str]) -> str:
    """Where rows with these columns get the ones `fmt` needs (docs/records.md)."""
    have = set(columns)
    name = ref.split("@")[0]
    if fmt.method == "dpo" and {"chosen", "rejected"} <= have:
        return (f"HH-RLHF-style dialogues: convert them with `factory datasets convert hh-rlhf {ref} "
                f"--name {name}-dpo`")
    if fmt.method == "dpo" and "messages" in have:
        return "an SFT dataset: train it with `factory train sft`, or build preference pairs for DPO"
    if fmt.method == "sft" and {"chosen", "rejected"} <= have:
        convert = "" if "prompt" in have else f" (after `factory datasets convert hh-rlhf {ref} --name {name}-dpo`)"
        return f"a preference dataset: train it with `factory train dpo`{convert}"
    if fmt.method == "sft" and "instruction" in have:
        return ("instruction rows need the conversation in `messages` (docs/records.md): answer them with "
                f"`factory generate {ref}`, or build them with a scheme (`factory build ...`)")
    return f"import data with {'/'.join(fmt.columns)} columns (rename with `factory datasets import ... --map`)"


def check_columns(fmt: Format, versions: list[DatasetVersion]) -> None:
    """Cheap, from the manifests: every version has the columns the method trains on."""
    for v in versions:
        if v.manifest.rows == 0:  # before its columns: an empty version may have none
            raise BadInput(f"dataset {v.ref} has no rows: nothing to train on")
        columns = list(v.manifest.columns)
        require_columns(columns, list(fmt.columns), f"dataset {v.ref} ({fmt.method.upper()})",
                        hint=conversion_hint(fmt, v.ref, columns))
        kind = "list[message]" if fmt.messages_only else "str|list[message]"
        require_types(v.scan().collect_schema(), dict.fromkeys(fmt.columns, kind), f"dataset {v.ref}")


def load_training_data(fmt: Format, versions: list[DatasetVersion]) -> Any:
    """One `datasets.Dataset` with just the training columns of all `versions`, failed rows left out."""
    from datasets import concatenate_datasets

    parts = []
    for v in versions:
        ds = v.to_hf()
        keep = [c for c in ds.column_names if c in fmt.columns]
        has_error = "error" in ds.column_names
        ds = ds.filter(lambda row, _e=has_error: _usable(row, fmt.columns, _e), desc=f"usable rows of {v.ref}")
        ds = ds.select_columns(keep)
        if len(ds) == 0:
            raise BadInput(f"dataset {v.ref} has no usable rows (all failed or empty in {', '.join(fmt.columns)})")
        _check_shapes(fmt, ds, v.ref)
        parts.append(ds)
    if len(parts) == 1:
        return parts[0]
    features = parts[0].features
    for i, v in enumerate(versions[1:], start=1):
        if parts[i].features != features:
            try:
                parts[i] = parts[i].cast(features)
            except (TypeError, ValueError):
                raise BadInput(f"dataset {v.ref} stores {', '.join(fmt.columns)} differently from "
                               f"{versions[0].ref} (text vs. messages); convert one of them") from None
    return concatenate_datasets(parts)


def _usable(row: dict[str, Any], columns: tuple[str, ...], has_error: bool) -> bool:
    if has_error and row.get("error"):
        return False
    return all(row.get(c) not in (None, "", []) for c in columns)


def _check_shapes(fmt: Format, ds: Any, ref: str) -> None:
    """Each training column is text or a list of {role, content}; SFT's `messages` must be the latter."""
    row = ds[0]
    for col in fmt.columns:
        value = row[col]
        if isinstance(value, list):
            if not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
                raise BadInput(f"dataset {ref}: column {col} holds lists, but not of {{role, content}} messages")
        elif fmt.messages_only:
            raise BadInput(f"dataset {ref}: column {col} must be a list of {{role, content}} messages, "
                           f"got {type(value).__name__}")
        elif not isinstance(value, str):
            raise BadInput(f"dataset {ref}: column {col} must be text or a list of messages, "
                           f"got {type(value).__name__}")
