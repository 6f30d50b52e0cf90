"""The manifest: what a dataset version is, where it came from, and what it cost.

A version id is a short content hash of what produced it: the input versions, the producing stage's
name and version, its config with secrets removed, and the prompt templates it used. Same recipe,
same id; change any ingredient and the id changes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from factory import __version__
from factory.hashing import digest, short_digest
from factory.records import Cost, InputRef
from factory.secrets import redact

MANIFEST = "manifest.json"


class StageInfo(BaseModel):
    """Which stage produced a version: e.g. kind="scheme", name="evol-instruct", version="1"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    name: str
    version: str

    def label(self) -> str:
        return f"{self.kind}:{self.name}@{self.version}"


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    rows: int
    bytes: int


class Manifest(BaseModel):
    """`manifest.json` of one dataset version. Unknown keys from newer factories are kept, not refused."""

    model_config = ConfigDict(extra="allow")
    name: str
    version: str
    created: str
    stage: StageInfo
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputRef] = Field(default_factory=list)
    prompts: dict[str, str] = Field(default_factory=dict)  # template name -> sha256
    rows: int = 0
    columns: dict[str, str] = Field(default_factory=dict)
    counters: dict[str, int] = Field(default_factory=dict)
    cost: Cost = Field(default_factory=Cost)
    files: list[FileEntry] = Field(default_factory=list)
    factory_version: str = __version__

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.model_validate_json(path.read_bytes())

    def dumps(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def prompt_hashes(prompts: dict[str, str] | None) -> dict[str, str]:
    """Template name -> sha256 of its text; a changed prompt changes the version id."""
    return {name: digest(text) for name, text in sorted((prompts or {}).items())}


def version_id(stage: StageInfo, config: dict[str, Any], inputs: list[InputRef],
               prompts: dict[str, str] | None = None) -> str:
    """The short content hash that names a version (see module docstring)."""
    return short_digest({
        "stage": stage.model_dump(),
        "config": redact(config),
        "inputs": [i.model_dump() for i in inputs],
        "prompts": prompt_hashes(prompts),
    })


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
