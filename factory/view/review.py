"""Human review: a reviewer's keep/drop marks and response edits, saved as a new version.

The reviewed version is never touched. The new version's stage is `review:human-review`; its config holds
the decisions (dropped row numbers, and for each edit the row, the column and a sha256 of the new text),
so its id changes with them and `factory lineage` shows who dropped what. An edited `response` also
rewrites the last assistant turn of `messages`, keeping the two consistent as docs/records.md asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from factory.errors import BadInput
from factory.hashing import digest
from factory.store import DatasetVersion, InputRef, StageInfo, Store, check_name

STAGE = StageInfo(kind="review", name="human-review", version="1")
EDITABLE = "response"
_ROW = "__review_row"


@dataclass
class Decisions:
    reviewer: str
    dropped: set[int] = field(default_factory=set)
    edits: dict[int, str] = field(default_factory=dict)
    note: str = ""

    def config(self, version: DatasetVersion) -> dict[str, Any]:
        return {
            "reviewer": self.reviewer,
            "reviewed": version.ref,
            "dropped": sorted(self.dropped),
            "edited": [{"row": r, "column": EDITABLE, "sha256": digest(t)} for r, t in sorted(self.edits.items())],
            **({"note": self.note} if self.note else {}),
        }


def parse_decisions(form: dict[str, list[str]], rows: int, reviewer: str) -> Decisions:
    """Form fields: `drop` (row numbers, repeatable), `edit-<row>` (the response as the reviewer left it), `note`.
    Browsers send a textarea's line breaks as CRLF; they are stored as LF, like the rows themselves."""
    def row_number(raw: str) -> int:
        if not raw.isascii() or not raw.isdigit() or not 0 <= int(raw) < rows:
            raise BadInput(f"row {raw[:20]!r} is not a row of this version")
        return int(raw)

    d = Decisions(reviewer=reviewer, note=(form.get("note") or [""])[0][:500])
    d.dropped = {row_number(r) for r in form.get("drop", [])}
    for key, values in form.items():
        if key.startswith("edit-") and values:
            row = row_number(key[5:])
            if row not in d.dropped:
                d.edits[row] = values[0].replace("\r\n", "\n")
    return d


def save(store: Store, version: DatasetVersion, decisions: Decisions, out_name: str) -> DatasetVersion:
    """Write the reviewed rows as a version of `out_name` (the store's writer: atomic, content-addressed)."""
    import polars as pl

    check_name(out_name)
    if decisions.edits and version.scan().collect_schema().get(EDITABLE) != pl.String:
        raise BadInput(f"this version has no text {EDITABLE!r} column to edit")
    foreign = [v.ref for v in store.versions(out_name)
               if (v.manifest.stage.kind, v.manifest.stage.name) != (STAGE.kind, STAGE.name)]
    if foreign:
        # saving into a dataset other stages made would move its `latest` to these rows, and every recipe that
        # reads it would get them; reviews go to a new name, or one that holds only reviews
        raise BadInput(f"out={out_name!r} already holds versions that are not human reviews ({foreign[0]}); "
                       "save the review under a new name")
    df = version.scan().with_row_index(_ROW).filter(~pl.col(_ROW).is_in(sorted(decisions.dropped))).collect()
    if decisions.edits:  # a textarea sent back unchanged is no edit
        current = dict(df.filter(pl.col(_ROW).is_in(sorted(decisions.edits))).select(_ROW, EDITABLE).iter_rows())
        decisions.edits = {r: t for r, t in decisions.edits.items() if current.get(r) != t}
    if not decisions.dropped and not decisions.edits:
        raise BadInput("nothing to save: no row was dropped or edited")
    if decisions.edits:
        ids = sorted(decisions.edits)
        edited = [_edit(r, decisions.edits[r[_ROW]]) for r in df.filter(pl.col(_ROW).is_in(ids)).to_dicts()]
        fixed = pl.DataFrame(edited, schema=df.schema)
        df = pl.concat([df.filter(~pl.col(_ROW).is_in(ids)), fixed]).sort(_ROW)
    df = df.drop(_ROW)
    counters = {"kept": df.height, "dropped": len(decisions.dropped), "edited": len(decisions.edits)}
    inputs = [InputRef(name=version.name, version=version.version)]
    with store.writer(out_name, stage=STAGE, config=decisions.config(version), inputs=inputs) as w:
        if w.exists:
            store.set_latest(out_name, w.version)
            return w.existing
        w.write(df)
        return w.commit(counters=counters)


def _edit(row: dict[str, Any], text: str) -> dict[str, Any]:
    row = dict(row)
    row[EDITABLE] = text
    messages = row.get("messages")
    if isinstance(messages, list):
        turns = [dict(m) for m in messages]
        for m in reversed(turns):
            if isinstance(m, dict) and m.get("role") == "assistant":
                m["content"] = text
                break
        row["messages"] = turns
    return row
