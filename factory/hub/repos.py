"""Handlers for accounts and repositories: whoami, create/delete/settings, info and listing, refs, commits.

Bodies and status codes follow what `huggingface_hub.HfApi` sends and parses (see `/work/shared/HUB_API.md`).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from aiohttp import web

from . import rules
from .context import HubContext, as_str, int_param, json_response, read_json
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
    repo_type, name, namespace = _repo_fields(body, user)
    if not hub.can_write(user, namespace):
        raise forbidden(f'You don\'t have the rights to create a {repo_type} under the namespace "{namespace}"')
    private = _private(body)
    repo_id = f"{_canonical_namespace(hub, user, namespace)}/{name}"
    existing = hub.storage.get_repo(repo_type, repo_id)
    if existing is not None:
        err = HubError(409, f"You already created this {repo_type} repo")
        err.extra["url"] = hub.repo_url(request, existing)
        raise err
    meta = hub.storage.create_repo(repo_type, repo_id, private=private, author=user)
    return json_response({"url": hub.repo_url(request, meta), "name": meta.id, "id": object_id(meta.key)})


def _repo_fields(body: dict[str, Any], user: str) -> tuple[str, str, str]:
    """(type, name, namespace) of a create/delete body, each checked against the Hub's rules before any use."""
    repo_type = body.get("type") or "model"
    name, namespace = body.get("name"), body.get("organization") or user
    if repo_type not in ("model", "dataset", "space"):
        raise bad_request(f"Invalid repo type: {str(repo_type)[:50]!r}")
    if not rules.valid_name(name):
        raise bad_request(f"Invalid repo name: {str(name)[:200]!r} (use A-Z a-z 0-9 . _ -, at most 96)")
    if not rules.valid_name(namespace):
        raise bad_request(f"Invalid namespace: {str(namespace)[:200]!r} (use A-Z a-z 0-9 . _ -, at most 96)")
    return repo_type, name, namespace


def _private(body: dict[str, Any]) -> bool:
    if "visibility" in body:
        if body["visibility"] not in ("private", "public"):
            raise bad_request("visibility must be 'private' or 'public'")
        return body["visibility"] == "private"
    if body.get("private") is not None and not isinstance(body["private"], bool):
        raise bad_request("private must be true or false")
    return bool(body.get("private"))


async def delete_repo(hub: HubContext, request: web.Request) -> web.Response:
    user = hub.user(request, required=True)
    assert user is not None
    body = await read_json(request)
    repo_type, name, namespace = _repo_fields(body, user)
    meta, _ = hub.repo_for_write(request, repo_type, f"{namespace}/{name}")
    hub.storage.delete_repo(meta)
    return web.Response(status=200)


async def update_settings(hub: HubContext, request: web.Request, meta: RepoMeta) -> web.Response:
    body = await read_json(request)
    if "visibility" in body or body.get("private") is not None:
        meta = hub.storage.update_repo(meta, private=_private(body))
    return json_response({"private": meta.private})


def card_data(hub: HubContext, commit: Commit) -> dict[str, Any] | None:
    """The README's metadata (None when absent or invalid), parsed once per README content: listings ask often."""
    entry = commit.tree.get("README.md")
    if entry is None:
        return None
    return _card_of_blob(hub.storage.blob_path(entry.sha256))


@functools.lru_cache(maxsize=1024)
def _card_of_blob(path: Path) -> dict[str, Any] | None:
    with open(path, "rb") as fh:
        head = fh.read(rules.MAX_CARD_BYTES)
    try:
        return rules.card_metadata(head.decode("utf-8", errors="replace"))
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
    return json_response(out[: int_param(request, "limit", len(out))])


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
    if not rules.valid_ref_name(name):
        raise bad_request(f"Invalid reference for a branch: {name[:200]!r}")
    if name in refs["heads"]:
        raise HubError(409, f"Reference refs/heads/{name} already exists")
    body = await read_json(request)
    start = hub.storage.resolve(meta, as_str(body.get("startingPoint"), "startingPoint", max_len=255) or "main")
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
    tag_name = body.get("tag")
    if not rules.valid_ref_name(tag_name):
        raise bad_request(f"Invalid tag name: {str(tag_name)[:200]!r}")
    as_str(body.get("message"), "message")
    target = hub.storage.resolve(meta, name)
    if tag_name in refs["tags"]:
        raise HubError(409, f"Reference refs/tags/{tag_name} already exists")
    hub.storage.set_ref(meta, "tags", tag_name, target.id)
    return json_response({})


async def list_commits(hub: HubContext, request: web.Request, meta: RepoMeta, rev: str) -> web.Response:
    head = hub.storage.resolve(meta, rev)
    page = int_param(request, "p", 0, high=10**7)
    limit = int_param(request, "limit", 100, low=1, high=1000)
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
