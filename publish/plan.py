"""What a publish will do, worked out locally before any network call: target repo, files, card, tags.

`--dry-run` prints a plan; a real publish hands it to `publish.hub`. Files carry the two hashes the Hub
reports per file (sha256 for LFS files, the git blob id for the others), so a republish of the same content
can be recognised without downloading anything.
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from factory.errors import BadInput

REPO_TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}


@dataclass
class PlanFile:
    path_in_repo: str
    source: Path | bytes

    @property
    def size(self) -> int:
        return len(self.source) if isinstance(self.source, bytes) else self.source.stat().st_size

    @cached_property
    def hashes(self) -> tuple[str, str]:
        """(sha256, git blob sha1) of the content."""
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(usedforsecurity=False)
        sha1.update(b"blob %d\0" % self.size)
        if isinstance(self.source, bytes):
            sha256.update(self.source)
            sha1.update(self.source)
        else:
            with open(self.source, "rb") as fh:
                while block := fh.read(1 << 20):
                    sha256.update(block)
                    sha1.update(block)
        return sha256.hexdigest(), sha1.hexdigest()

    def same_as(self, remote_sha256: str | None, remote_blob_id: str | None) -> bool:
        sha256, sha1 = self.hashes
        return remote_sha256 == sha256 if remote_sha256 else remote_blob_id == sha1


@dataclass
class Plan:
    kind: str  # "dataset" | "model"
    repo_id: str
    what: str  # the thing published, for messages: "evol@3f2a…" or "checkpoint ckpt/sft"
    files: list[PlanFile]
    card: str
    revision: str = "main"
    private: bool = False
    tags: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # remote paths matching these and not in `files` are deleted
    commit_message: str = ""
    collection: str | None = None  # a Hub collection title or slug to add the repo to
    note: str = ""  # the collection note
    record: dict[str, Any] = field(default_factory=dict)  # what `factory zoo list` shows later
    notes: list[str] = field(default_factory=list)  # warnings for the user

    @property
    def repo_type(self) -> str:
        return self.kind

    def all_files(self) -> list[PlanFile]:
        return [*self.files, PlanFile("README.md", self.card.encode())]

    def is_stale(self, remote_path: str) -> bool:
        wanted = {f.path_in_repo for f in self.all_files()}
        return remote_path not in wanted and any(fnmatch.fnmatchcase(remote_path, p) for p in self.stale)

    def describe(self, endpoint: str) -> str:
        """The `--dry-run` text: target, files, tags, card."""
        prefix = "datasets/" if self.kind == "dataset" else ""
        lines = [f"target:   {self.kind} repo {self.repo_id} on {endpoint} ({endpoint.rstrip('/')}/{prefix}"
                 f"{self.repo_id}), revision {self.revision}, {'private' if self.private else 'public'}",
                 f"publish:  {self.what}",
                 f"tags:     {', '.join(self.tags) or '-'}",
                 f"message:  {self.commit_message}"]
        if self.collection:
            lines.append(f"collection: {self.collection} (note: {self.note})")
        lines.append("files:")
        files = self.all_files()
        width = max(len(f.path_in_repo) for f in files)
        lines += [f"  {f.path_in_repo.ljust(width)}  {human_size(f.size)}" for f in files]
        if self.stale:
            lines.append(f"replaces: remote files matching {', '.join(self.stale)} that are not listed above")
        lines += ["", "--- README.md ---", self.card.rstrip(), "--- end of README.md ---"]
        return "\n".join(lines)


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def parse_repo(value: str, kind: str) -> str:
    """`ORG/NAME` (or `datasets/ORG/NAME` for a dataset) -> `ORG/NAME`; a wrong type or a bad id is BadInput."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    parts = value.strip().strip("/").split("/")
    if len(parts) == 3 and parts[0] in REPO_TYPES:
        given = REPO_TYPES[parts[0]]
        if given != kind:
            raise BadInput(f"--repo {value!r} is a {given} repo, but a {kind} is being published: "
                           f"pushing a {kind} to a {given} repo is refused")
        parts = parts[1:]
    if len(parts) != 2:
        raise BadInput(f"--repo must be ORG/NAME (e.g. you/my-{kind}), got {value!r}")
    repo_id = "/".join(parts)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise BadInput(f"invalid --repo {value!r}: {str(exc).splitlines()[0]}") from None
    return repo_id
