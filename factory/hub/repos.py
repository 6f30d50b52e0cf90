"""Handlers for accounts and repositories: whoami, create/delete/settings, info and listing, refs, commits.

Bodies and status codes follow what `huggingface_hub.HfApi` sends and parses (see `/work/shared/HUB_API.md`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from . import rules
from .context import HubContext, json_response, read_json
from .errors import HubError, bad_request, forbidden, revision_not_found
from .storage import Commit, RepoMeta


def object_id(*parts: str) -> str:
    """A stable 24-hex id, the shape of the Hub's database ids."""
    return hashlib.sha1("\0".join(parts).encode(), usedforsecurity=False).hexdigest()[:24]


async def whoami(hub: HubContext, request: web.Request) -> web.Response:
    user = hub.user(request, required=True)
    assert user is not None
    orgs = [
        {"type": "org", "id": object_id("org", o), "name": o, "fullname": o, "roleInOrg": "admin"}
        for o in hub.orgs.get(user, [])
    ]
    token = {"displayName": "loopback", "role": "write", "createdAt": "2024-01-01T00:00:00.000Z"}
    return json_response(
        {
            "type": "user",
            "id": object_id("user", user),
            "name": user,
            "fullname": user,
            "email": f"{user}@localhost",
            "emailVerified": True,
            "isPro": False,
            "canPay": False,
            "avatarUrl": "",
            "orgs": orgs,
            "auth": {"type": "access_token", "accessToken": token},
        }
    )


def _canonical_namespace(hub: HubContext, user: str, namespace: str) -> str:
    for name in [user, *hub.orgs.get(user, [])]:
        if name.lower() == namespace.lower():
            return name
    return namespace


async def create_repo(hub: HubContext, request: web.Request) -> web.Response:
    user = hub.user(request, required=True)
    assert user is not None
    body = await read_json(request)
    repo_type = body.get("type") or "model"
    name = str(body.get("name") or "")
    namespace = str(body.get("organization") or user)
    if repo_type not in ("model", "dataset", "space"):
        raise bad_request(f"Invalid repo type: {repo_type}")
    if not rules.REPO_NAME.match(name) or name.endswith(".git") or ".." in name:
        raise bad_request(f"Invalid repo name: {name!r}")
    if not hub.can_write(user, namespace):
        raise forbidden(f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"')
    private = body.get("visibility") == "private" if "visibility" in body else bool(body.get("private"))
    repo_id = f"{_canonical_namespace(hub, user, namespace)}/{name}"
    existing = hub.storage.get_repo(repo_type, repo_id)
    if existing is not None:
        err = HubError(409, f"You already created this {repo_type} repo")
        err.extra["url"] = hub.repo_url(request, existing)
        raise err
    meta = hub.storage.create_repo(repo_type, repo_id, private=private, author=user)
    return json_response({"url": hub.repo_url(request, meta), "name": meta.id, "id": object_id(meta.key)})


async def delete_repo(hub: HubContext, request: web.Request) -> web.Response:
    user = hub.user(request, required=True)
    body = await read_json(request)
    repo_type = body.get("type") or "model"
    repo_id = f"{body.get('organization') or user}/{body.get('name')}"
    meta, _ = hub.repo_for_write(request, repo_type, repo_id)
    hub.storage.delete_repo(meta)
    return web.Response(status=200)


async def update_settings(hub: HubContext, request: web.Request, meta: RepoMeta) -> web.Response:
    body = await read_json(request)
    if "visibility" in body:
        meta = hub.storage.update_repo(meta, private=body["visibility"] == "private")
    elif body.get("private") is not None:
        meta = hub.storage.update_repo(meta, private=bool(body["private"]))
    return json_response({"private": meta.private})


def card_data(hub: HubContext, commit: Commit) -> dict[str, Any] | None:
    entry = commit.tree.get("README.md")
    if entry is None:
        return None
    try:
        return rules.card_metadata(hub.storage.read_blob(entry.sha256).decode("utf-8", errors="replace"))
    except ValueError:
        return None


def repo_json(hub: HubContext, meta: RepoMeta, commit: Commit, *, siblings: bool, blobs: bool) -> dict[str, Any]:
    """The repo object of `/api/{type}s/{id}`: the keys `ModelInfo` / `DatasetInfo` read."""
    card = card_data(hub, commit)
    tags = [t for t in (card or {}).get("tags") or [] if isinstance(t, str)]
    out: dict[str, Any] = {
        "_id": object_id(meta.key),
        "id": meta.id,
        "author": meta.id.split("/")[0],
        "sha": commit.id,
        "lastModified": commit.date,
        "createdAt": meta.created_at,
        "private": meta.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": tags,
        "usedStorage": sum(e.size for e in commit.tree.values()),
    }
    if meta.type == "model":
        out["modelId"] = meta.id
        for key in ("library_name", "pipeline_tag"):
            if card and isinstance(card.get(key), str):
                out[key] = card[key]
    if card is not None:
        out["cardData"] = card
    if siblings:
        out["siblings"] = [_sibling(path, e, blobs) for path, e in sorted(commit.tree.items())]
    return out


def _sibling(path: str, entry: Any, blobs: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"rfilename": path}
    if blobs:
        item.update(size=entry.size, blobId=entry.oid)
        if entry.lfs:
            pointer = rules.lfs_pointer(entry.sha256, entry.size)
            item["lfs"] = {"size": entry.size, "sha256": entry.sha256, "pointerSize": len(pointer)}
    return item


async def repo_info(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str) -> web.Response:
    commit = hub.storage.resolve(meta, rev)
    blobs = request.query.get("blobs", "").lower() in ("1", "true")
    return json_response(repo_json(hub, meta, commit, siblings=True, blobs=blobs))


async def list_repos(hub: HubContext, request: web.Request, repo_type: str) -> web.Response:
    user = hub.user(request)
    author = request.query.get("author", "").lower()
    search = request.query.get("search", "").lower()
    full = request.query.get("full", "").lower() in ("1", "true")
    out = []
    for meta in hub.storage.list_repos(repo_type):
        if not hub.can_read(user, meta) or (author and meta.id.split("/")[0].lower() != author):
            continue
        if search and search not in meta.id.lower():
            continue
        head = hub.storage.resolve(meta, "main")
        out.append(repo_json(hub, meta, head, siblings=full, blobs=False))
    limit = request.query.get("limit")
    return json_response(out[: int(limit)] if limit and limit.isdigit() else out)


def _ref_list(refs: dict[str, str], prefix: str) -> list[dict[str, str]]:
    return [{"name": n, "ref": f"{prefix}{n}", "targetCommit": c} for n, c in sorted(refs.items())]


async def list_refs(hub: HubContext, request: web.Request, meta: RepoMeta) -> web.Response:
    refs = hub.storage.refs(meta)
    out: dict[str, Any] = {
        "branches": _ref_list(refs["heads"], "refs/heads/"),
        "tags": _ref_list(refs["tags"], "refs/tags/"),
        "converts": [],
    }
    if request.query.get("include_prs"):
        out["pullRequests"] = _ref_list(refs["pr"], "refs/pr/")
    return json_response(out)


async def branch(hub: HubContext, request: web.Request, meta: RepoMeta, name: str) -> web.Response:
    refs = hub.storage.refs(meta)
    if request.method == "DELETE":
        if name == "main":
            raise forbidden("Cannot delete refs/heads/main")
        if name not in refs["heads"]:
            raise revision_not_found(name)
        hub.storage.set_ref(meta, "heads", name, None)
        return json_response({})
    if not name or name.startswith("refs/") or not rules.valid_path(name):
        raise bad_request(f"Invalid reference for a branch: {name}")
    if name in refs["heads"]:
        raise HubError(409, f"Reference refs/heads/{name} already exists")
    body = await read_json(request)
    start = hub.storage.resolve(meta, str(body.get("startingPoint") or "main"))
    hub.storage.set_ref(meta, "heads", name, start.id)
    return json_response({})


async def tag(hub: HubContext, request: web.Request, meta: RepoMeta, name: str) -> web.Response:
    refs = hub.storage.refs(meta)
    if request.method == "DELETE":
        if name not in refs["tags"]:
            raise revision_not_found(name)
        hub.storage.set_ref(meta, "tags", name, None)
        return json_response({})
    body = await read_json(request)
    tag_name = str(body.get("tag") or "")
    if not tag_name or tag_name.startswith("refs/") or not rules.valid_path(tag_name):
        raise bad_request(f"Invalid tag name: {tag_name!r}")
    target = hub.storage.resolve(meta, name)
    if tag_name in refs["tags"]:
        raise HubError(409, f"Reference refs/tags/{tag_name} already exists")
    hub.storage.set_ref(meta, "tags", tag_name, target.id)
    return json_response({})


async def list_commits(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str) -> web.Response:
    head = hub.storage.resolve(meta, rev)
    page = int(request.query.get("p", "0") or 0)
    limit = min(int(request.query.get("limit", "100") or 100), 1000)
    commits = list(hub.storage.history(meta, head))
    chunk = commits[page * limit : (page + 1) * limit]
    formatted = "formatted" in request.query.getall("expand[]", [])
    out = []
    for c in chunk:
        item: dict[str, Any] = {
            "id": c.id,
            "title": c.title,
            "message": c.message,
            "authors": [{"user": c.author, "avatar": ""}],
            "date": c.date,
        }
        if formatted:
            item["formatted"] = {"title": c.title, "message": c.message}
        out.append(item)
    headers = {}
    if (page + 1) * limit < len(commits):
        headers["Link"] = f'<{request.url.update_query(p=page + 1, limit=limit)}>; rel="next"'
    return json_response(out, headers=headers)


async def validate_yaml(hub: HubContext, request: web.Request) -> web.Response:
    body = await read_json(request)
    try:
        rules.card_metadata(str(body.get("content") or ""))
    except ValueError as exc:
        return json_response({"error": str(exc), "errors": [{"message": str(exc)}], "warnings": []}, status=400)
    return json_response({"errors": [], "warnings": []})
