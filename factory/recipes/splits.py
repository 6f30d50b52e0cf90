"""Whole-table dataset stages the recipes need (distill, SPIN): a seeded held-out split and the first N rows.

Both are ordinary versions with lineage (their input and config name them), so a rerun reuses them and a
checkpoint's factory.json says exactly which rows it was trained on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from factory.config import StrictModel
from factory.errors import BadInput
from factory.hashing import short_digest
from factory.pipeline.stage import Stage


class HoldoutConfig(StrictModel):
    fraction: float = Field(0.1, gt=0, lt=1, description="share of the rows held out")
    seed: int = Field(0, description="which rows: a hash of the seed and the row's id/instruction/messages")
    part: Literal["train", "heldout"] = "train"


class Holdout(Stage):
    """One side of a seeded split by row content (not position): the same row lands on the same side."""

    kind = "stage"
    name = "holdout"
    whole_table = True
    Config = HoldoutConfig
    config: HoldoutConfig

    def process_table(self, df: Any) -> Any:
        c = self.config
        keys = [short_digest([c.seed, r.get("id"), r.get("instruction"), r.get("messages")]) for r in df.to_dicts()]
        held = [int(k[:8], 16) % 10_000 < c.fraction * 10_000 for k in keys]
        mask = held if c.part == "heldout" else [not h for h in held]
        self.counters["dropped"] += len(mask) - sum(mask)
        return df.filter(mask)


class HeadConfig(StrictModel):
    n: int = Field(ge=1, description="rows to keep, from the top")


class Head(Stage):
    """The first N rows."""

    kind = "stage"
    name = "head"
    whole_table = True
    Config = HeadConfig
    config: HeadConfig

    def process_table(self, df: Any) -> Any:
        self.counters["dropped"] += max(df.height - self.config.n, 0)
        return df.head(self.config.n)


def holdout_split(store: Any, data: Any, fraction: float, seed: int = 0) -> tuple[Any, Any]:
    """(train, held-out) versions `<name>-train` and `<name>-heldout` of `data`; both must have rows."""
    from factory.pipeline.execute import run_stage

    rows = data.read()  # checked first: an empty side would stop run_stage with a message about the split stage
    held = Holdout(HoldoutConfig(fraction=fraction, seed=seed, part="heldout")).process_table(rows).height
    if held == 0 or held == rows.height:
        raise BadInput(f"{data.ref} has too few rows to hold {fraction:.0%} out (of {rows.height} rows, {held} "
                       "would be held out); pass a held-out set (--eval REF) or another fraction")
    train, heldout = (run_stage(store, Holdout(HoldoutConfig(fraction=fraction, seed=seed, part=part)), None, data,
                                f"{data.name}-{part}").version for part in ("train", "heldout"))
    return train, heldout
