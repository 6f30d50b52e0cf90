"""Handlers that read a revision's files: tree listing, paths-info and `resolve` downloads (HEAD, GET, Range).

Entries carry the shapes `RepoFile` / `RepoFolder` parse (`oid`, `size`, `lfs: {oid, size, pointerSize}`,
`lastCommit: {id, title, date}` with `expand`); downloads carry the headers `hf_hub_download` checks
(`X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size`, `Content-Length`).
"""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from . import rules
from .context import HubContext, int_param, json_response, read_json
from .errors import HubError, entry_not_found
from .storage import Commit, Entry, RepoMeta

PAGE = 1000
PAGE_EXPANDED = 50
MAX_PATHS = 10_000
CHUNK = 1 << 20
_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE)
_HUGE = 10**20  # past any file: a longer number is read as this (int() refuses strings of over 4,300 digits)


def directories(tree: dict[str, Entry]) -> dict[str, str]:
    """Every directory of a tree (root excluded) mapped to a stable tree oid."""
    children: dict[str, list[tuple[str, str]]] = {}
    for path, entry in tree.items():
        parts = path.split("/")
        for i in range(1, len(parts)):
            children.setdefault("/".join(parts[:i]), [])
        children.setdefault("/".join(parts[:-1]), []).append((parts[-1], entry.oid))
    subdirs: dict[str, list[str]] = {}
    for d in children:
        if d:
            subdirs.setdefault(_parent(d), []).append(d)
    oids: dict[str, str] = {}
    for d in sorted(children, key=lambda p: -p.count("/") - (1 if p else 0)):  # deepest first
        subs = [(s.rsplit("/", 1)[-1], oids[s]) for s in subdirs.get(d, [])]
        oids[d] = rules.tree_oid(children[d] + subs)
    oids.pop("", None)
    return oids


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def file_json(path: str, entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
    if entry.lfs:
        pointer = rules.lfs_pointer(entry.sha256, entry.size)
        item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(pointer)}
    return item


def entries_json(commit: Commit, paths: list[str], dirs: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        if p in commit.tree:
            out.append(file_json(p, commit.tree[p]))
        elif p in dirs:
            out.append({"type": "directory", "oid": dirs[p], "size": 0, "path": p})
    return out


def add_last_commits(hub: HubContext, meta: RepoMeta, commit: Commit, items: list[dict[str, Any]]) -> None:
    """Set `lastCommit` on each entry: the newest first-parent commit that changed it (or, for a folder, under it)."""
    pending = {item["path"]: item for item in items}
    for c in hub.storage.history(meta, commit):
        if not pending:
            break
        parent = hub.storage.read_commit(meta, c.parents[0]) if c.parents else None
        before = parent.tree if parent else {}
        changed = {p for p in set(c.tree) | set(before) if c.tree.get(p) != before.get(p)}
        # the folders holding a change, as a set: testing each pending folder against every changed path was
        # pending x changed per commit (10,000 paths of a 10,000-file commit: 10^8 string tests)
        touched = changed | {p.rsplit("/", i)[0] for p in changed for i in range(1, p.count("/") + 1)}
        for path in [p for p in pending if p in touched]:
            pending.pop(path)["lastCommit"] = {"id": c.id, "title": c.title, "date": c.date}


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


async def tree(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str, path: str) -> web.Response:
    commit = hub.storage.resolve(meta, rev)
    dirs = directories(commit.tree)
    path = path.strip("/")
    if path and path not in dirs:
        raise entry_not_found(path, commit.id)
    recursive, expand = _truthy(request.query.get("recursive")), _truthy(request.query.get("expand"))
    prefix = f"{path}/" if path else ""

    def wanted(p: str) -> bool:
        return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

    paths = sorted(d for d in dirs if wanted(d)) + sorted(p for p in commit.tree if wanted(p))
    limit = min(int_param(request, "limit", PAGE, low=1), PAGE_EXPANDED if expand else PAGE)
    start = _cursor(request.query.get("cursor"))
    items = entries_json(commit, paths[start : start + limit], dirs)
    if expand:
        add_last_commits(hub, meta, commit, items)
    headers = {}
    if start + limit < len(paths):
        token = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        headers["Link"] = f'<{request.url.update_query(cursor=token)}>; rel="next"'
    return json_response(items, headers=headers)


def _cursor(cursor: str | None) -> int:
    """The offset a `Link` cursor of ours encodes; 400 for anything else."""
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError):
        raw = ""
    if not raw.isdigit() or len(raw) > 12:
        raise HubError(400, "Invalid cursor")
    return int(raw)


async def paths_info(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str) -> web.Response:
    commit = hub.storage.resolve(meta, rev)
    if request.content_type == "application/json":
        body = await read_json(request)
        paths, expand = body.get("paths") or [], bool(body.get("expand"))
    else:
        try:
            form = await request.post()
        except ValueError as exc:  # a malformed multipart or urlencoded body
            raise HubError(400, f"Invalid form body: {str(exc)[:200]}") from None
        paths = [p for p in form.getall("paths", []) if isinstance(p, str)]
        expand = _truthy(str(form.get("expand", "")))
    if not isinstance(paths, list) or len(paths) > MAX_PATHS or not all(isinstance(p, str) for p in paths):
        raise HubError(400, f"'paths' must be a list of at most {MAX_PATHS} strings")
    dirs = directories(commit.tree)
    items = entries_json(commit, list(dict.fromkeys(p.strip("/") for p in paths)), dirs)
    if expand:
        add_last_commits(hub, meta, commit, items)
    return json_response(items)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for a single `Range` header, None for the whole file; HubError 416 if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header)
    unsatisfiable = HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    if match is None or not any(match.groups()):
        raise unsatisfiable
    first, last = (_number(g) for g in match.groups())
    if first is not None:
        start, end = first, min(last, size - 1) if last is not None else size - 1
    else:
        assert last is not None
        start, end = max(size - last, 0), size - 1
    if start >= size or start > end:
        raise unsatisfiable
    return start, end


def _number(digits: str) -> int | None:
    return None if not digits else _HUGE if len(digits) > 20 else int(digits)


async def resolve(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str, path: str) -> web.StreamResponse:
    commit = hub.storage.resolve(meta, rev)
    entry = commit.tree.get(path)
    if entry is None:
        raise entry_not_found(path, commit.id)
    name = path.rsplit("/", 1)[-1]
    headers = {
        "X-Repo-Commit": commit.id,
        "ETag": f'"{entry.sha256 if entry.lfs else entry.oid}"',
        "Accept-Ranges": "bytes",
        "Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}",
    }
    if entry.lfs:
        headers["X-Linked-Etag"] = f'"{entry.sha256}"'
        headers["X-Linked-Size"] = str(entry.size)
    span = _byte_range(request.headers.get("Range"), entry.size)
    start, end = span if span else (0, entry.size - 1)
    if span:
        headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
    response = web.StreamResponse(status=206 if span else 200, headers=headers)
    response.content_length = max(end - start + 1, 0)
    await response.prepare(request)
    if request.method == "GET" and end >= start:
        with open(hub.storage.blob_path(entry.sha256), "rb") as fh:
            fh.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = fh.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                await response.write(chunk)
    await response.write_eof()
    return response
