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
import re
from typing import Any

from aiohttp import web

from . import rules
from .context import URL_PREFIX, HubContext, json_response, read_json
from .errors import HubError, bad_request, revision_not_found
from .storage import Commit, Entry, RepoMeta

LFS_JSON = "application/vnd.git-lfs+json"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _text(hub: HubContext, commit: Commit, path: str) -> str | None:
    entry = commit.tree.get(path)
    return hub.storage.read_blob(entry.sha256).decode("utf-8", errors="replace") if entry else None


async def preupload(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str) -> web.Response:
    commit = hub.storage.resolve(meta, rev)
    body = await read_json(request)
    attrs = _text(hub, commit, ".gitattributes")
    patterns = rules.lfs_patterns(attrs if attrs is not None else rules.default_gitattributes(meta.type))
    gitignore = body.get("gitIgnore") if body.get("gitIgnore") is not None else _text(hub, commit, ".gitignore")
    files = []
    for item in body.get("files") or []:
        path, size = str(item.get("path", "")), int(item.get("size") or 0)
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
    for obj in body.get("objects") or []:
        oid, size = str(obj.get("oid", "")), obj.get("size")
        if not SHA256.match(oid) or not isinstance(size, int) or size < 0:
            objects.append({"oid": oid, "size": size if isinstance(size, int) else 0, "error": _lfs_err("Bad oid")})
        elif hub.storage.has_blob(oid):
            objects.append({"oid": oid, "size": size})
        else:
            href = f"{base}/{oid}?size={size}&sig={hub.sign(meta.key, oid, str(size))}"
            upload = {"href": href, "expires_in": 3600}
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {"upload": upload}})
    payload = {"transfer": "basic", "objects": objects, "hash_algo": "sha256"}
    return web.Response(body=json.dumps(payload).encode(), content_type=LFS_JSON)


def _lfs_err(message: str) -> dict[str, Any]:
    return {"code": 422, "message": message}


async def lfs_upload(hub: HubContext, request: web.Request, meta: RepoMeta, oid: str) -> web.Response:
    """PUT target of the batch API: stream the body to disk, check sha256 and size, keep it as a blob."""
    size = request.query.get("size", "")
    if not SHA256.match(oid) or not size.isdigit() or request.query.get("sig") != hub.sign(meta.key, oid, size):
        raise HubError(403, "Invalid or expired upload URL")
    tmp = hub.storage.new_tmp_path()
    digest, written = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as fh:
            async for chunk in request.content.iter_chunked(1 << 20):
                digest.update(chunk)
                written += len(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        if digest.hexdigest() != oid or written != int(size):
            raise bad_request(f"Uploaded content does not match oid {oid} and size {size} (got {written} bytes)")
        hub.storage.adopt_blob(tmp, oid)
    finally:
        tmp.unlink(missing_ok=True)
    return web.Response(status=200)


def _parse_ndjson(raw: bytes) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    header: dict[str, Any] | None = None
    ops: list[tuple[str, dict[str, Any]]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            key, value = item["key"], item["value"]
        except (ValueError, KeyError, TypeError) as exc:
            raise bad_request(f"Invalid ndjson line in commit payload: {exc}") from exc
        if key == "header":
            header = value
        elif key in ("file", "lfsFile", "deletedFile", "deletedFolder"):
            ops.append((key, value))
        else:
            raise bad_request(f"Unknown commit operation: {key}")
    if header is None:
        raise bad_request("Commit payload has no header line")
    for _, value in ops:
        path = str(value.get("path", "")).rstrip("/") if isinstance(value, dict) else ""
        if not rules.valid_path(path):
            raise HubError(422, f"Invalid path in commit: {value.get('path')!r}")
    return header, ops


def _stage(hub: HubContext, ops: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, Entry | None]]:
    """Write every added file's blob (durable before the commit exists) and check LFS objects are present."""
    staged: list[tuple[str, str, Entry | None]] = []
    for key, value in ops:
        path = str(value["path"]).rstrip("/")
        if key == "file":
            content = str(value.get("content", ""))
            try:
                data = (
                    base64.b64decode(content, validate=True) if value.get("encoding") == "base64" else content.encode()
                )
            except binascii.Error as exc:
                raise bad_request(f"Invalid base64 content for {path}") from exc
            staged.append(("add", path, hub.storage.entry_for_bytes(data)))
        elif key == "lfsFile":
            oid = str(value.get("oid", ""))
            if not hub.storage.has_blob(oid):
                raise bad_request(
                    "Your push was rejected because an LFS pointer pointed to a file that does not exist. "
                    f"Offending file: - {path}"
                )
            entry = hub.storage.entry_for_lfs(oid)
            if value.get("size") is not None and int(value["size"]) != entry.size:
                raise bad_request(f"LFS object {oid} has size {entry.size}, not {value['size']}")
            staged.append(("add", path, entry))
        else:
            staged.append((key, path, None))
    return staged


def _apply(staged: list[tuple[str, str, Entry | None]]):
    def change(tree: dict[str, Entry]) -> dict[str, Entry]:
        for action, path, entry in staged:
            if action == "add":
                assert entry is not None
                for parent in (path.rsplit("/", i)[0] for i in range(1, path.count("/") + 1)):
                    if parent in tree:
                        raise HubError(422, f"Cannot create {path}: {parent} is a file")
                if any(p.startswith(path + "/") for p in tree):
                    raise HubError(422, f"Cannot create {path}: it is a folder")
                tree[path] = entry
            elif action == "deletedFile":
                if tree.pop(path, None) is None:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            else:
                under = [p for p in tree if p.startswith(path + "/")]
                if not under:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                for p in under:
                    del tree[p]
        return tree

    return change


def _target_ref(hub: HubContext, meta: RepoMeta, rev: str) -> tuple[str, str]:
    refs = hub.storage.refs(meta)
    name = rev[len("refs/heads/") :] if rev.startswith("refs/heads/") else rev
    if name in refs["heads"]:
        return "heads", name
    if rev.startswith("refs/pr/") and rev[len("refs/pr/") :] in refs["pr"]:
        return "pr", rev[len("refs/pr/") :]
    raise revision_not_found(rev)


async def commit(hub: HubContext, request: web.Request, meta: RepoMeta, user: str, rev: str) -> web.Response:
    header, ops = _parse_ndjson(await request.read())
    kind, name = _target_ref(hub, meta, rev)
    staged = _stage(hub, ops)
    pr_num: str | None = None
    if request.query.get("create_pr") in ("1", "true", "True"):
        with hub.storage.lock:
            refs = hub.storage.refs(meta)
            pr_num = str(max((int(n) for n in refs["pr"]), default=0) + 1)
            hub.storage.set_ref(meta, "pr", pr_num, refs[kind][name])
        kind, name = "pr", pr_num
    title = str(header.get("summary") or "").strip() or "Update files"
    try:
        new = hub.storage.commit(
            meta, kind, name, _apply(staged), title, str(header.get("description") or ""), user,
            parent=header.get("parentCommit"),
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
