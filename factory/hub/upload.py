"""Handlers that write to a repo: preupload, the git-lfs batch API and its PUT target, and the ndjson commit.

The client's upload path (with `HF_HUB_DISABLE_XET=1`) is: `preupload` says which files go to LFS,
`info/lfs/objects/batch` hands out an upload URL per missing object, each object is PUT there (its
sha256 and size verified), then one `commit` lists every operation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any

from aiohttp import web

from . import rules
from .context import URL_PREFIX, HubContext, as_str, json_response, parse_json, read_body, read_json
from .errors import HubError, bad_request, repo_not_found, revision_not_found
from .storage import SHA256, Commit, Entry, RepoMeta, repo_key

LFS_JSON = "application/vnd.git-lfs+json"
MAX_COMMIT_BODY = 512 * 1024 * 1024  # regular files (< 10 MB each) travel base64-inlined in the commit
MAX_OPERATIONS = 100_000


def _text(hub: HubContext, commit: Commit, path: str) -> str | None:
    entry = commit.tree.get(path)
    return hub.storage.read_blob(entry.sha256).decode("utf-8", errors="replace") if entry else None


async def preupload(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str) -> web.Response:
    commit = hub.storage.resolve(meta, rev)
    body = await read_json(request)
    attrs = _text(hub, commit, ".gitattributes")
    patterns = rules.lfs_patterns(attrs if attrs is not None else rules.default_gitattributes(meta.type))
    gitignore = as_str(body.get("gitIgnore"), "gitIgnore", max_len=1 << 20) or _text(hub, commit, ".gitignore")
    items = body.get("files") or []
    if not isinstance(items, list) or len(items) > MAX_OPERATIONS:
        raise bad_request(f"'files' must be a list of at most {MAX_OPERATIONS} objects")
    files = []
    for item in items:
        path, size = _path_and_size(item)
        existing = commit.tree.get(path)
        oid = None if existing is None else existing.sha256 if existing.lfs else existing.oid
        files.append(
            {
                "path": path,
                "uploadMode": "lfs" if rules.is_lfs(path, size, patterns) else "regular",
                "shouldIgnore": rules.is_ignored(path, gitignore),
                "oid": oid,
            }
        )
    return json_response({"files": files, "commitOid": commit.id})


async def lfs_batch(hub: HubContext, request: web.Request, meta: RepoMeta) -> web.Response:
    body = await read_json(request)
    if body.get("operation") != "upload":
        raise HubError(422, "This server only implements the LFS 'upload' operation")
    objects: list[dict[str, Any]] = []
    base = f"{hub.base_url(request)}/{URL_PREFIX[meta.type]}{meta.id}.git/info/lfs/objects/upload"
    wanted = body.get("objects") or []
    if not isinstance(wanted, list) or len(wanted) > MAX_OPERATIONS:
        raise HubError(422, f"'objects' must be a list of at most {MAX_OPERATIONS} objects")
    has_blob = hub.storage.blob_checker(meta)
    for obj in wanted:
        oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
        if not isinstance(oid, str) or not SHA256.fullmatch(oid) or type(size) is not int or size < 0:
            bad = {"oid": str(oid)[:64], "size": size if type(size) is int else 0, "error": _lfs_err("Bad oid")}
            objects.append(bad)
        elif has_blob(oid):
            # Existence is answered for this repo only: another repo's objects must be uploaded again here.
            objects.append({"oid": oid, "size": size})
        else:
            href = f"{base}/{oid}?size={size}&sig={hub.sign(meta.key, oid, str(size))}"
            upload = {"href": href, "expires_in": 3600}
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {"upload": upload}})
    payload = {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
    return web.Response(body=json.dumps(payload).encode(), content_type=LFS_JSON)


def _path_and_size(item: Any) -> tuple[str, int]:
    if not isinstance(item, dict):
        raise bad_request("Each file must be an object with 'path' and 'size'")
    path, size = item.get("path"), item.get("size") or 0
    if not rules.valid_path(path):
        raise HubError(422, f"Invalid path: {str(path)[:200]!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad_request(f"Invalid size for {path}: expected a non-negative integer")
    return path, size


def _lfs_err(message: str) -> dict[str, Any]:
    return {"code": 422, "message": message}


async def lfs_upload(hub: HubContext, request: web.Request, repo_type: str, repo_id: str, oid: str) -> web.Response:
    """PUT target of the batch API: stream the body to disk, check sha256 and size, keep it as a blob.

    The signature is checked before the repo is looked up, so an unsigned PUT cannot tell a private repo
    from a missing one; the body is never read past the size the signature covers.
    """
    size, sig = request.query.get("size", ""), request.query.get("sig", "")
    key = repo_key(repo_type, repo_id)
    if not SHA256.fullmatch(oid) or not size.isascii() or not size.isdigit() or not hub.signed(sig, key, oid, size):
        raise HubError(403, "Invalid or expired upload URL")
    meta = hub.storage.get_repo(repo_type, repo_id)
    if meta is None:
        raise repo_not_found()
    expected = int(size)
    if request.content_length is not None and request.content_length != expected:
        raise bad_request(f"Upload of {oid} must be {expected} bytes, not {request.content_length}")
    tmp = hub.storage.new_tmp_path()
    digest, written = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as fh:
            async for chunk in request.content.iter_chunked(1 << 20):
                digest.update(chunk)
                written += len(chunk)
                if written > expected:
                    raise bad_request(f"Upload of {oid} is larger than its declared {expected} bytes")
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if digest.hexdigest() != oid or written != int(size):
            raise bad_request(f"Uploaded content does not match oid {oid} and size {size} (got {written} bytes)")
        hub.storage.adopt_blob(tmp, oid)
        hub.storage.grant_blob(meta, oid)
    finally:
        tmp.unlink(missing_ok=True)
    return web.Response(status=200)


def _parse_ndjson(raw: bytes) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    header: dict[str, Any] | None = None
    ops: list[tuple[str, dict[str, Any]]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        item = parse_json(line, "ndjson line in commit payload")
        key, value = (item.get("key"), item.get("value")) if isinstance(item, dict) else (None, None)
        if not isinstance(value, dict):
            raise bad_request('Invalid ndjson line in commit payload: expected {"key": ..., "value": {...}}')
        if key == "header":
            header = value
        elif key in ("file", "lfsFile", "deletedFile", "deletedFolder"):
            ops.append((key, value))
        else:
            raise bad_request(f"Unknown commit operation: {str(key)[:100]}")
        if len(ops) > MAX_OPERATIONS:
            raise bad_request(f"A commit holds at most {MAX_OPERATIONS} operations")
    if header is None:
        raise bad_request("Commit payload has no header line")
    for field in ("summary", "description", "parentCommit"):
        as_str(header.get(field), f"header {field}", max_len=1 << 20)
    for key, value in ops:
        path = value.get("path")
        if isinstance(path, str) and key == "deletedFolder":
            path = path.rstrip("/")  # only a folder may be written with a trailing slash
        if not isinstance(path, str) or not rules.valid_path(path):
            raise HubError(422, f"Invalid path in commit: {str(path)[:200]!r}")
    return header, ops


def _stage(
    hub: HubContext, meta: RepoMeta, ops: list[tuple[str, dict[str, Any]]]
) -> list[tuple[str, str, Entry | None]]:
    """Write every added file's blob (durable before the commit exists) and check LFS objects are this repo's."""
    staged: list[tuple[str, str, Entry | None]] = []
    has_blob = hub.storage.blob_checker(meta)
    for key, value in ops:
        path = str(value["path"]).rstrip("/")
        if key == "file":
            content = as_str(value.get("content"), f"content of {path}", max_len=MAX_COMMIT_BODY)
            try:
                data = (
                    base64.b64decode(content, validate=True) if value.get("encoding") == "base64" else content.encode()
                )
            except binascii.Error as exc:
                raise bad_request(f"Invalid base64 content for {path}") from exc
            staged.append(("add", path, hub.storage.entry_for_bytes(data)))
        elif key == "lfsFile":
            oid, size = value.get("oid"), value.get("size")
            if size is not None and (type(size) is not int or size < 0):
                raise bad_request(f"Invalid size for {path}: expected a non-negative integer")
            # Only objects uploaded to this repo (or in its history) count: a pointer to another user's
            # private file reads exactly like a pointer to nothing.
            if not isinstance(oid, str) or not has_blob(oid):
                raise bad_request(
                    "Your push was rejected because an LFS pointer pointed to a file that does not exist. "
                    f"Offending file: - {path}"
                )
            entry = hub.storage.entry_for_lfs(oid)
            if size is not None and size != entry.size:
                raise bad_request(f"LFS object {oid} has size {entry.size}, not {size}")
            staged.append(("add", path, entry))
        else:
            staged.append((key, path, None))
    return staged


def _apply(staged: list[tuple[str, str, Entry | None]]):
    def change(tree: dict[str, Entry]) -> dict[str, Entry]:
        folders = _Folders(tree)
        for action, path, entry in staged:
            if action == "add":
                assert entry is not None
                for parent in (path.rsplit("/", i)[0] for i in range(1, path.count("/") + 1)):
                    if parent in tree:
                        raise HubError(422, f"Cannot create {path}: {parent} is a file")
                if path in folders.kids:
                    raise HubError(422, f"Cannot create {path}: it is a folder")
                if path not in tree:
                    folders.link(path)
                tree[path] = entry
            elif action == "deletedFile":
                if tree.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                folders.unlink(path)
            else:
                if path not in folders.kids:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in folders.remove(path):
                    del tree[p]
        return tree

    return change


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


class _Folders:
    """The folders of a tree being changed, each with its files and subfolders, so that an operation costs its
    own size: scanning the whole tree for each added or deleted path made a commit of n files n² work (20,000
    files: minutes, holding the storage lock)."""

    def __init__(self, tree: dict[str, Entry]) -> None:
        self.kids: dict[str, set[str]] = {}  # folder ("" for the root) -> full paths of its files and subfolders
        for path in tree:
            self.link(path)

    def link(self, path: str) -> None:
        while path:
            parent = _parent(path)
            known = parent in self.kids
            self.kids.setdefault(parent, set()).add(path)
            if known:
                return
            path = parent

    def unlink(self, path: str) -> None:
        while path:
            parent = _parent(path)
            kids = self.kids[parent]
            kids.discard(path)
            if kids or not parent:
                return
            del self.kids[parent]
            path = parent

    def remove(self, folder: str) -> list[str]:
        """Forget `folder` and everything under it; the files that were under it."""
        files, stack = [], [folder]
        while stack:
            for kid in self.kids.pop(stack.pop(), ()):
                (stack if kid in self.kids else files).append(kid)
        self.unlink(folder)
        return files


def _target_ref(hub: HubContext, meta: RepoMeta, rev: str) -> tuple[str, str]:
    refs = hub.storage.refs(meta)
    name = rev[len("refs/heads/") :] if rev.startswith("refs/heads/") else rev
    if name in refs["heads"]:
        return "heads", name
    if rev.startswith("refs/pr/") and rev[len("refs/pr/") :] in refs["pr"]:
        return "pr", rev[len("refs/pr/") :]
    raise revision_not_found(rev)


async def commit(hub: HubContext, request: web.Request, meta: RepoMeta, user: str, rev: str) -> web.Response:
    header, ops = _parse_ndjson(await read_body(request, MAX_COMMIT_BODY))
    kind, name = _target_ref(hub, meta, rev)
    staged = _stage(hub, meta, ops)
    pr_num: str | None = None
    if request.query.get("create_pr") in ("1", "true", "True"):
        with hub.storage.lock:
            refs = hub.storage.refs(meta)
            pr_num = str(max((int(n) for n in refs["pr"]), default=0) + 1)
            hub.storage.set_ref(meta, "pr", pr_num, refs[kind][name])
        kind, name = "pr", pr_num
    title = as_str(header.get("summary"), "summary", max_len=1 << 20).strip() or "Update files"
    description = as_str(header.get("description"), "description", max_len=1 << 20)
    try:
        new = hub.storage.commit(
            meta, kind, name, _apply(staged), title, description, user,
            parent=header.get("parentCommit") or None,
        )  # fmt: skip
    except HubError:
        if pr_num is not None:
            hub.storage.set_ref(meta, "pr", pr_num, None)
        raise
    repo_url = hub.repo_url(request, meta)
    out: dict[str, Any] = {
        "success": True,
        "commitOid": new.id,
        "commitUrl": f"{repo_url}/commit/{new.id}",
        "commitMessage": title,
        "hookOutput": "",
    }
    if pr_num is not None:
        out["pullRequestUrl"] = f"{repo_url}/discussions/{pr_num}"
    return json_response(out)
