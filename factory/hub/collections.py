"""Collections (the model zoo's shelves): one JSON file per collection, served with the Hub's object shape.

A collection object is `{slug, title, description, owner: {name, ...}, private, position, theme, upvotes,
lastUpdated, items: [{_id, id, type, position, note: {text, html}}]}`, the keys `huggingface_hub.Collection`
reads. Slugs are `owner/title-words-<24 hex id>`; lookups go by the id, so a renamed collection keeps its URL.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from .context import HubContext, as_str, int_param, json_response, read_json
from .errors import HubError, bad_request, forbidden, repo_not_found
from .storage import atomic_write_json, now_iso

ITEM_TYPES = ("model", "dataset", "space", "paper", "collection")
MAX_TITLE = 200
MAX_TEXT = 10_000
MAX_ITEMS = 1000
# What PATCH may change, and the type each field must have (a wrong type is a 400, never a stored value).
_PATCHABLE = {"title": str, "description": str, "private": bool, "position": int, "theme": str}


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "collection"


def not_found() -> HubError:
    return HubError(404, "Collection not found")


class CollectionStore:
    """Collections kept as `<root>/collections/<id>.json`, each replaced atomically on change."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "collections"
        self.dir.mkdir(parents=True, exist_ok=True)

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob("*.json"))]

    def get(self, slug: str) -> dict[str, Any] | None:
        namespace, _, rest = slug.partition("/")
        cid = rest.rsplit("-", 1)[-1]
        path = self.dir / f"{cid}.json"
        if not re.fullmatch(r"[0-9a-f]{24}", cid) or not path.is_file():
            return None
        data = json.loads(path.read_text())
        return data if data["namespace"].lower() == namespace.lower() else None

    def save(self, data: dict[str, Any]) -> None:
        data["lastUpdated"] = now_iso()
        atomic_write_json(self.dir / f"{data['id']}.json", data)

    def delete(self, data: dict[str, Any]) -> None:
        (self.dir / f"{data['id']}.json").unlink(missing_ok=True)


def _item_visible(hub: HubContext, store: CollectionStore | None, user: str | None, item: dict[str, Any]) -> bool:
    """A repo or collection in a collection is shown only to those who may see it: a private repo in a public
    collection is not listed to others (and reads, to them, as missing)."""
    if item["type"] in ("model", "dataset", "space"):
        meta = hub.storage.get_repo(item["type"], item["id"])
        return meta is not None and hub.can_read(user, meta)
    if item["type"] == "collection" and store is not None:
        inner = store.get(item["id"])
        return inner is not None and _visible(hub, user, inner)
    return True


def render(
    hub: HubContext,
    data: dict[str, Any],
    max_items: int | None = None,
    user: str | None = None,
    store: CollectionStore | None = None,
) -> dict[str, Any]:
    ns = data["namespace"]
    items = sorted(data["items"], key=lambda i: i["position"])
    items = [i for i in items if _item_visible(hub, store, user, i)]
    out_items = []
    for item in items[:max_items]:
        note = item.get("note")
        rendered = {**item, "note": {"text": note, "html": note} if note else None}
        if item["type"] in ("model", "dataset", "space"):
            rendered.update(author=item["id"].split("/")[0], repoType=item["type"])
        if item["type"] == "collection":
            rendered["slug"] = item["id"]
        out_items.append(rendered)
    owner_type = "org" if ns.lower() in hub.all_orgs() else "user"
    return {
        "id": data["id"],
        "slug": f"{ns}/{slugify(data['title'])}-{data['id']}",
        "title": data["title"],
        "description": data.get("description"),
        "owner": {"_id": data["id"], "name": ns, "fullname": ns, "type": owner_type, "avatarUrl": ""},
        "private": data["private"],
        "position": data["position"],
        "theme": data["theme"],
        "upvotes": data.get("upvotes", 0),
        "gating": False,
        "lastUpdated": data["lastUpdated"],
        "items": out_items,
    }


def _visible(hub: HubContext, user: str | None, data: dict[str, Any]) -> bool:
    return not data["private"] or hub.can_write(user, data["namespace"])


async def list_or_create(hub: HubContext, request: web.Request, store: CollectionStore) -> web.Response:
    user = hub.user(request, required=request.method == "POST")
    if request.method == "GET":
        owners = {o.lower() for o in request.query.getall("owner", [])}
        wanted = {i.lower() for i in request.query.getall("item", [])}
        found = []
        for data in store.all():
            if not _visible(hub, user, data) or (owners and data["namespace"].lower() not in owners):
                continue
            # only items the caller may see count: a private repo's name in a public collection is no answer
            listed = {f"{i['type']}s/{i['id']}".lower(): i for i in data["items"]} if wanted else {}
            if wanted and not any(_item_visible(hub, store, user, listed[w]) for w in wanted & set(listed)):
                continue
            found.append(data)
        found.sort(key=lambda d: d["lastUpdated"], reverse=True)
        found = found[: int_param(request, "limit", len(found))]
        # The client numbers listed collections itself (`Collection(position=i, **item)`): no `position` here.
        rendered = [render(hub, d, max_items=4, user=user, store=store) for d in found]
        listed = [{k: v for k, v in r.items() if k != "position"} for r in rendered]
        return json_response(listed)
    body = await read_json(request)
    namespace = as_str(body.get("namespace"), "namespace", default=user or "", max_len=96) or user or ""
    title = as_str(body.get("title"), "title", max_len=MAX_TITLE).strip()
    description = as_str(body.get("description"), "description", max_len=MAX_TEXT) or None
    if not title:
        raise bad_request("A collection needs a title")
    if body.get("private") is not None and not isinstance(body["private"], bool):
        raise bad_request("private must be true or false")
    if not hub.can_write(user, namespace):
        raise forbidden(f"You don't have the rights to create a collection under the namespace {namespace}")
    existing = [d for d in store.all() if d["namespace"].lower() == namespace.lower()]
    for data in existing:
        if slugify(data["title"]) == slugify(title):
            slug = render(hub, data)["slug"]
            raise HubError(409, "Collection already exists", extra={"slug": slug})
    data = {
        "id": uuid.uuid4().hex[:24],
        "namespace": namespace,
        "title": title,
        "description": description,
        "private": bool(body.get("private")),
        "position": len(existing),
        "theme": "blue",
        "upvotes": 0,
        "items": [],
    }
    store.save(data)
    return json_response(render(hub, data, user=user, store=store))


def _load(hub: HubContext, request: web.Request, store: CollectionStore, slug: str, write: bool) -> dict[str, Any]:
    user = hub.user(request, required=write)
    data = store.get(slug)
    if data is None or not _visible(hub, user, data):
        raise not_found()
    if write and not hub.can_write(user, data["namespace"]):
        raise forbidden(f"You don't have the rights to edit collection {slug}")
    return data


async def collection(hub: HubContext, request: web.Request, store: CollectionStore, slug: str) -> web.Response:
    data = _load(hub, request, store, slug, write=request.method != "GET")
    user = hub.user(request)
    if request.method == "DELETE":
        store.delete(data)
        return json_response({"success": True})
    if request.method == "PATCH":
        body = await read_json(request)
        changes = {k: body[k] for k in _PATCHABLE if body.get(k) is not None}
        for key, value in changes.items():
            kind = _PATCHABLE[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise bad_request(f"Invalid {key}: expected a {kind.__name__}")
            if isinstance(value, str) and len(value) > (MAX_TITLE if key != "description" else MAX_TEXT):
                raise bad_request(f"Invalid {key}: too long")
        if "title" in changes and not changes["title"].strip():
            raise bad_request("A collection needs a title")
        data.update(changes)
        store.save(data)
        return json_response({"success": True, "data": render(hub, data, user=user, store=store)})
    if request.method != "GET":
        raise HubError(405, "Method not allowed")
    return json_response(render(hub, data, user=user, store=store))


def _check_item(hub: HubContext, request: web.Request, store: CollectionStore, item_id: str, item_type: str) -> None:
    if item_type not in ITEM_TYPES:
        raise bad_request(f"Invalid item type {item_type!r}, expected one of {', '.join(ITEM_TYPES)}")
    if item_type in ("model", "dataset", "space"):
        meta = hub.storage.get_repo(item_type, item_id)
        if meta is None or not hub.can_read(hub.user(request), meta):
            raise repo_not_found()
    elif item_type == "collection":
        inner = store.get(item_id)
        if inner is None or not _visible(hub, hub.user(request), inner):  # a private one reads as missing
            raise not_found()


async def items(
    hub: HubContext, request: web.Request, store: CollectionStore, slug: str, item_oid: str | None
) -> web.Response:
    data = _load(hub, request, store, slug, write=True)
    body = await read_json(request)
    note = as_str(body.get("note"), "note", max_len=MAX_TEXT) or None
    if item_oid is None:
        if request.method != "POST":
            raise HubError(405, "Method not allowed")
        item = body.get("item")
        if not isinstance(item, dict):
            raise bad_request("'item' must be an object with 'id' and 'type'")
        item_id, item_type = as_str(item.get("id"), "item id", max_len=300), as_str(item.get("type"), "item type")
        _check_item(hub, request, store, item_id, item_type)
        if any(i["type"] == item_type and i["id"].lower() == item_id.lower() for i in data["items"]):
            raise HubError(409, "Item already in collection")
        if len(data["items"]) >= MAX_ITEMS:
            raise bad_request(f"A collection holds at most {MAX_ITEMS} items")
        entry = {"_id": uuid.uuid4().hex[:24], "id": item_id, "type": item_type, "position": len(data["items"])}
        data["items"].append({**entry, "note": note})
        store.save(data)
        return json_response(render(hub, data, user=hub.user(request), store=store))
    ordered = sorted(data["items"], key=lambda i: i["position"])
    match = [i for i in ordered if i["_id"] == item_oid]
    if not match:
        raise HubError(404, "Item not found in collection")
    if request.method == "DELETE":
        ordered.remove(match[0])
    else:
        position = body.get("position")
        if position is not None and (type(position) is not int or position < 0):
            raise bad_request("position must be a non-negative integer")
        if note is not None:
            match[0]["note"] = note
        if position is not None:
            ordered.remove(match[0])
            ordered.insert(position, match[0])
    for pos, item in enumerate(ordered):
        item["position"] = pos
    data["items"] = ordered
    store.save(data)
    return json_response({"success": True})
