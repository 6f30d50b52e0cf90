"""On-disk state of the loopback Hub: content-addressed blobs, immutable commits, atomically swapped refs.

Layout under `root`:

    blobs/ab/<sha256>                      file contents, named by their sha256
    repos/<type>/<ns>/<name>/repo.json     canonical id, privacy, creation date (ids compare lower-cased)
    repos/<type>/<ns>/<name>/commits/<id>.json   one commit: parents, message, full tree path -> entry
    repos/<type>/<ns>/<name>/refs.json     branch, tag and PR heads
    repos/<type>/<ns>/<name>/objects/<sha256>   empty markers: the LFS objects this repo may reference
    tmp/                                   staging area for atomic writes

Blobs are stored once, but a repo sees only its own: a commit may reference an LFS object only when it was
uploaded to that repo (with the content, checked against its sha256) or is already in that repo's history, so
knowing the hash of another user's private file gives nothing. Names are checked against the Hub's rules and
every path is resolved under `root` before it is touched.

A commit writes its blobs, then its commit object, then replaces `refs.json` (temp file + `os.replace`),
each fsync'ed first: a crash at any point leaves the previous revision the one that is served.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from factory.fsutil import atomic_write, fsync_dir

from . import rules
from .errors import HubError, revision_not_found

COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REPO_TYPES = ("model", "dataset", "space")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1, sort_keys=True).encode())


@dataclass(frozen=True)
class Entry:
    """One file in a commit's tree: its blob (sha256), size, git oid and whether it is stored in LFS."""

    sha256: str
    size: int
    oid: str
    lfs: bool


@dataclass(frozen=True)
class Commit:
    id: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    tree: dict[str, Entry] = field(default_factory=dict)


@dataclass
class RepoMeta:
    id: str
    type: str
    private: bool
    created_at: str
    author: str

    @property
    def key(self) -> str:
        return repo_key(self.type, self.id)


def repo_key(repo_type: str, repo_id: str) -> str:
    return f"{repo_type}/{repo_id.lower()}"


class HubStorage:
    """Repos, commits, refs and blobs of one loopback Hub, all kept under `root`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        for sub in ("blobs", "repos", "tmp", "collections"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._commits: dict[tuple[str, str], Commit] = {}

    # Blobs -----------------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str) -> bool:
        return bool(SHA256.fullmatch(sha256)) and self.blob_path(sha256).is_file()

    def grant_blob(self, meta: RepoMeta, sha256: str) -> None:
        """Let `meta` reference blob `sha256` (its content was uploaded to this repo)."""
        marker = self._repo_dir(meta.key) / "objects" / sha256
        if SHA256.fullmatch(sha256) and not marker.exists():
            marker.parent.mkdir(exist_ok=True)
            marker.touch()

    def repo_has_blob(self, meta: RepoMeta, sha256: str) -> bool:
        """Whether `meta` may reference `sha256`: uploaded to it, or in one of its commits (repos made before
        markers existed). Never whether some other repo holds it."""
        return self.blob_checker(meta)(sha256)

    def blob_checker(self, meta: RepoMeta) -> Callable[[str], bool]:
        """`repo_has_blob` for the many oids of one request: the repo's history is read once, not once per oid
        (an LFS batch of 5,000 oids other repos hold, against 30 commits, took 12 s of the event loop)."""
        repo_dir = self._repo_dir(meta.key)
        in_history: set[str] | None = None

        def check(sha256: str) -> bool:
            nonlocal in_history
            if not self.has_blob(sha256):
                return False
            if (repo_dir / "objects" / sha256).exists():
                return True
            if in_history is None:
                commits = (self.read_commit(meta, path.stem) for path in (repo_dir / "commits").glob("*.json"))
                in_history = {e.sha256 for c in commits if c is not None for e in c.tree.values() if e.lfs}
            if sha256 in in_history:
                self.grant_blob(meta, sha256)
                return True
            return False

        return check

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha):
            atomic_write(self.blob_path(sha), data)
        return sha

    def new_tmp_path(self) -> Path:
        return self.tmp / f"upload-{uuid.uuid4().hex}"

    def adopt_blob(self, tmp_path: Path, sha256: str) -> None:
        """Move a fully written, verified temp file into the blob store."""
        dest = self.blob_path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            tmp_path.unlink(missing_ok=True)
            return
        os.replace(tmp_path, dest)
        fsync_dir(dest.parent)

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    def entry_for_bytes(self, data: bytes) -> Entry:
        return Entry(sha256=self.put_bytes(data), size=len(data), oid=rules.git_blob_oid(data), lfs=False)

    def entry_for_lfs(self, sha256: str) -> Entry:
        size = self.blob_path(sha256).stat().st_size
        return Entry(sha256=sha256, size=size, oid=rules.git_blob_oid(rules.lfs_pointer(sha256, size)), lfs=True)

    # Repos -----------------------------------------------------------------------------------------
    def _repo_dir(self, key: str) -> Path:
        """`repos/<type>/<ns>/<name>` for a validated key, resolved and refused unless it lies under the root."""
        repo_type, _, repo_id = key.partition("/")
        if repo_type not in REPO_TYPES or not rules.valid_repo_id(repo_id):
            raise HubError(400, f"Invalid repo id: {repo_id[:200]!r}")
        base = (self.root / "repos").resolve()
        path = (base / key).resolve()
        if not path.is_relative_to(base) or path == base:
            raise HubError(400, f"Invalid repo id: {repo_id[:200]!r}")
        return path

    def get_repo(self, repo_type: str, repo_id: str) -> RepoMeta | None:
        if repo_type not in REPO_TYPES or not rules.valid_repo_id(repo_id):
            return None
        path = self._repo_dir(repo_key(repo_type, repo_id)) / "repo.json"
        if not path.is_file():
            return None
        return RepoMeta(**json.loads(path.read_text()))

    def list_repos(self, repo_type: str) -> list[RepoMeta]:
        base = self.root / "repos" / repo_type
        return [RepoMeta(**json.loads(p.read_text())) for p in sorted(base.glob("*/*/repo.json"))]

    def create_repo(self, repo_type: str, repo_id: str, private: bool, author: str) -> RepoMeta:
        """Create a repo whose `main` holds the Hub's "initial commit"; raises HubError 409 if it exists."""
        if repo_type not in REPO_TYPES or not rules.valid_repo_id(repo_id):
            raise HubError(400, f"Invalid repo id: {repo_id[:200]!r}")
        with self.lock:
            existing = self.get_repo(repo_type, repo_id)
            if existing is not None:
                raise HubError(409, f"You already created this {repo_type} repo")
            meta = RepoMeta(id=repo_id, type=repo_type, private=private, created_at=now_iso(), author=author)
            staging = self.tmp / f"repo-{uuid.uuid4().hex}"
            (staging / "commits").mkdir(parents=True)
            atomic_write_json(staging / "repo.json", asdict(meta))
            attrs = rules.default_gitattributes(repo_type).encode()
            commit = self._new_commit(
                [], {".gitattributes": self.entry_for_bytes(attrs)}, "initial commit", "", "system"
            )
            atomic_write_json(staging / "commits" / f"{commit.id}.json", _commit_json(commit))
            atomic_write_json(staging / "refs.json", {"heads": {"main": commit.id}, "tags": {}, "pr": {}})
            dest = self._repo_dir(meta.key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging, dest)
            fsync_dir(dest.parent)
            return meta

    def update_repo(self, meta: RepoMeta, **changes: Any) -> RepoMeta:
        with self.lock:
            new = RepoMeta(**{**asdict(meta), **changes})
            atomic_write_json(self._repo_dir(meta.key) / "repo.json", asdict(new))
            return new

    def delete_repo(self, meta: RepoMeta) -> None:
        with self.lock:
            trash = self.tmp / f"deleted-{uuid.uuid4().hex}"
            os.replace(self._repo_dir(meta.key), trash)
            shutil.rmtree(trash, ignore_errors=True)
            self._commits = {k: v for k, v in self._commits.items() if k[0] != meta.key}

    # Refs ------------------------------------------------------------------------------------------
    def refs(self, meta: RepoMeta) -> dict[str, dict[str, str]]:
        return json.loads((self._repo_dir(meta.key) / "refs.json").read_text())

    def set_ref(self, meta: RepoMeta, kind: str, name: str, commit_id: str | None) -> None:
        """Point (or, with None, remove) `heads`/`tags`/`pr` ref `name`; one atomic file swap."""
        with self.lock:
            refs = self.refs(meta)
            if commit_id is None:
                refs[kind].pop(name, None)
            else:
                refs[kind][name] = commit_id
            atomic_write_json(self._repo_dir(meta.key) / "refs.json", refs)

    def resolve(self, meta: RepoMeta, rev: str) -> Commit:
        """A branch, tag, `refs/...` name or commit id to its commit; HubError RevisionNotFound otherwise."""
        refs = self.refs(meta)
        cid: str | None = None
        if rev.startswith("refs/heads/"):
            cid = refs["heads"].get(rev[len("refs/heads/") :])
        elif rev.startswith("refs/tags/"):
            cid = refs["tags"].get(rev[len("refs/tags/") :])
        elif rev.startswith("refs/pr/"):
            cid = refs["pr"].get(rev[len("refs/pr/") :])
        else:
            cid = refs["heads"].get(rev) or refs["tags"].get(rev)
            if cid is None and COMMIT_ID.match(rev):
                cid = rev
        commit = self.read_commit(meta, cid) if cid else None
        if commit is None:
            raise revision_not_found(rev)
        return commit

    # Commits ---------------------------------------------------------------------------------------
    def read_commit(self, meta: RepoMeta, commit_id: str) -> Commit | None:
        cached = self._commits.get((meta.key, commit_id))
        if cached is not None:
            return cached
        path = self._repo_dir(meta.key) / "commits" / f"{commit_id}.json"
        if not COMMIT_ID.match(commit_id) or not path.is_file():
            return None
        raw = json.loads(path.read_text())
        commit = Commit(**{**raw, "tree": {p: Entry(**e) for p, e in raw["tree"].items()}})
        self._commits[(meta.key, commit_id)] = commit
        return commit

    def history(self, meta: RepoMeta, commit: Commit) -> Iterator[Commit]:
        """The commit and its first-parent ancestors, newest first."""
        current: Commit | None = commit
        while current is not None:
            yield current
            current = self.read_commit(meta, current.parents[0]) if current.parents else None

    def _new_commit(self, parents: list[str], tree: dict[str, Entry], title: str, message: str, author: str) -> Commit:
        body = {"parents": parents, "title": title, "message": message, "author": author, "date": now_iso()}
        body["tree"] = {p: asdict(e) for p, e in sorted(tree.items())}
        cid = hashlib.sha1(json.dumps(body, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
        return Commit(
            id=cid, parents=parents, title=title, message=message, author=author, date=body["date"], tree=tree
        )

    def commit(
        self,
        meta: RepoMeta,
        kind: str,
        name: str,
        change: Callable[[dict[str, Entry]], dict[str, Entry]],
        title: str,
        message: str,
        author: str,
        parent: str | None = None,
    ) -> Commit:
        """Apply `change` to the head tree of ref `kind/name` and move the ref to the new commit.

        `parent`, when given, must be the current head (else 412, as the Hub). Blobs are already durable
        when this is called; the commit object is written before the ref moves.
        """
        with self.lock:
            head_id = self.refs(meta)[kind].get(name)
            head = self.read_commit(meta, head_id) if head_id else None
            if head is None:
                raise revision_not_found(name)
            if parent is not None and parent != head.id:
                raise HubError(412, "The branch was updated since you opened this page. Please refresh and try again.")
            commit = self._new_commit([head.id], change(dict(head.tree)), title, message, author)
            atomic_write_json(self._repo_dir(meta.key) / "commits" / f"{commit.id}.json", _commit_json(commit))
            self._commits[(meta.key, commit.id)] = commit
            self.set_ref(meta, kind, name, commit.id)
            return commit


def _commit_json(commit: Commit) -> dict[str, Any]:
    return {**asdict(commit), "tree": {p: asdict(e) for p, e in sorted(commit.tree.items())}}
