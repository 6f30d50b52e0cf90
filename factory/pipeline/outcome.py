"""Honest results: a stage that produced nothing, or lost most of its rows, says why from its counters.

`check_outcome` runs after a stage and before its version is committed. No usable row (every row failed,
dropped or eliminated) is an error naming the reason and the likely fix, and nothing is stored unless the
user passed `--allow-empty` (the answers are cached either way, so a rerun costs nothing). Losing more than
90 % of the rows is stored, with a one-line warning that says the same. `require_rows` is what a later
stage says when it is fed an empty version.
"""

from __future__ import annotations

from typing import Any

from factory.errors import BadInput, FactoryError

LOSS_WARNING = 0.9  # warn when more than this share of the rows asked for did not come out
FAILURE_COLUMNS = ("error", "judge_error")
_COMMON = ("kept", "dropped", "failed")


class EmptyResult(FactoryError):
    """A stage produced no usable row; nothing was stored."""


def require_rows(version: Any, what: str = "") -> None:
    """A stage fed an empty version says so, instead of complaining about its columns."""
    if version.manifest.rows == 0:
        raise BadInput(f"{version.ref} has no rows{what}: nothing to work on (`factory lineage {version.ref}` "
                       "shows how it was made)")


def usable(frame: Any) -> int:
    """Rows of an output batch that carry no failure."""
    failed = None
    for column in FAILURE_COLUMNS:
        if column in frame.columns:
            mask = frame[column].is_not_null()
            failed = mask if failed is None else failed | mask
    return frame.height if failed is None else frame.height - int(failed.sum())


def reason(counts: dict[str, Any], first_error: str | None) -> str:
    """What the counters say happened: the stage's own counters first, then failed/dropped."""
    own = [f"{k} {v}" for k, v in counts.items() if k not in _COMMON and isinstance(v, int) and v > 0]
    common = [f"{k} {counts[k]}" for k in ("failed", "dropped") if counts.get(k)]
    text = ", ".join(own + common) or "no rows came out"
    if first_error:
        text += f" (first error: {first_error[:120]})"
    return text


def check_outcome(stage: Any, counts: dict[str, Any], good: int, asked: int, first_error: str | None,
                  allow_empty: bool) -> str | None:
    """Raise `EmptyResult` when nothing usable came out (unless allowed); return a warning line for heavy loss."""
    if asked <= 0:
        return None
    why = reason(counts, first_error)
    hint = stage.loss_hint(counts)
    if counts.get("skipped", 0) * 2 >= asked:
        hint = ("Rows whose prompt is empty are skipped, never sent: check the input's text column "
                "(`factory datasets show`), or import another one with --map.")
    if good == 0:
        message = f"{stage.name} produced no usable rows from {asked} asked for: {why}. {hint}"
        if not allow_empty:
            raise EmptyResult(f"{message} Nothing was stored (answers are cached); --allow-empty stores it anyway")
        return f"warning: {message} (stored empty: --allow-empty)"
    if good < (1 - LOSS_WARNING) * asked:
        return f"warning: {stage.name} kept {good} of {asked} rows asked for: {why}. {hint}"
    return None
