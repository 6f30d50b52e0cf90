"""The loopback Hub's aiohttp application: one catch-all route that parses Hub URLs itself.

Hub URLs carry URL-quoted revisions (`refs%2Fpr%2F1`) and paths in single segments, which a pattern router
would decode before matching, so the raw path is split and each part unquoted here. Every answer gets an
`X-Request-Id`; a `HubError` becomes the Hub's JSON error with `X-Error-Code`.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import unquote

from aiohttp import web

from . import collections, faults, files, parquet, repos, upload
from .collections import CollectionStore
from .context import MAX_JSON_BODY, REPO_TYPES, HubContext, error_response, json_response
from .errors import HubError
from .storage import HubStorage

log = logging.getLogger(__name__)
HUB_KEY = web.AppKey("hub", HubContext)
COLLECTIONS_KEY = web.AppKey("collections", CollectionStore)
NOT_FOUND = HubError(404, "Not Found")


def _rev_and_path(parts: list[str]) -> tuple[str, str]:
    """Split `<rev>/<path...>`; the client quotes the revision, but `refs/pr/1` may also arrive unquoted."""
    if len(parts) >= 3 and parts[0] == "refs" and parts[1] in ("heads", "tags", "pr", "convert"):
        return "/".join(parts[:3]), "/".join(parts[3:])
    return (parts[0] if parts else ""), "/".join(parts[1:])


async def _repo_api(hub: HubContext, request: web.Request, repo_type: str, parts: list[str]) -> web.StreamResponse:
    """`/api/{type}s/{ns}/{name}[/{action}/...]`."""
    repo_id, action, rest = f"{parts[0]}/{parts[1]}", (parts[2] if len(parts) > 2 else ""), parts[3:]
    method, joined = request.method, "/".join(rest)
    writes = {"preupload", "commit", "branch", "tag", "settings"}
    if (action in writes and method != "GET") or (action == "auth-check" and rest == ["write"]):
        meta, user = hub.repo_for_write(request, repo_type, repo_id)
    else:
        meta, user = hub.repo_for_read(request, repo_type, repo_id), ""
    if action == "" and method == "GET":
        return await repos.repo_info(hub, request, meta, "main")
    if action == "auth-check" and method == "GET" and rest in ([], ["write"]):
        return json_response({})  # the access check above is the answer
    if action == "revision" and method == "GET":
        return await repos.repo_info(hub, request, meta, joined)
    if action == "refs" and method == "GET":
        return await repos.list_refs(hub, request, meta)
    if action == "commits" and method == "GET":
        return await repos.list_commits(hub, request, meta, joined or "main")
    if action == "tree" and method == "GET":
        return await files.tree(hub, request, meta, *_rev_and_path(rest))
    if action == "paths-info" and method == "POST":
        return await files.paths_info(hub, request, meta, joined)
    if action == "preupload" and method == "POST":
        return await upload.preupload(hub, request, meta, joined)
    if action == "commit" and method == "POST":
        return await upload.commit(hub, request, meta, user, joined)
    if action == "branch" and method in ("POST", "DELETE"):
        return await repos.branch(hub, request, meta, joined)
    if action == "tag" and method in ("POST", "DELETE"):
        return await repos.tag(hub, request, meta, joined)
    if action == "settings" and method == "PUT":
        return await repos.update_settings(hub, request, meta)
    if action == "parquet" and method == "GET" and repo_type == "dataset":
        return await parquet.parquet(hub, request, meta, rest)
    raise NOT_FOUND


async def _api(hub: HubContext, request: web.Request, parts: list[str]) -> web.StreamResponse:
    method, store = request.method, request.app[COLLECTIONS_KEY]
    head = parts[0] if parts else ""
    if parts == ["whoami-v2"] and method == "GET":
        return await repos.whoami(hub, request)
    if parts == ["repos", "create"] and method == "POST":
        return await repos.create_repo(hub, request)
    if parts == ["repos", "delete"] and method == "DELETE":
        return await repos.delete_repo(hub, request)
    if parts == ["validate-yaml"] and method == "POST":
        return await repos.validate_yaml(hub, request)
    if parts == ["agent-harnesses"] and method == "GET":
        # The client fetches this registry (once a day) to name the AI agent in its user agent: none here.
        return json_response({"standardEnvVars": [], "harnesses": {}})
    if head == "collections":
        if len(parts) == 1:
            return await collections.list_or_create(hub, request, store)
        slug = "/".join(parts[1:3])
        if len(parts) == 3:
            return await collections.collection(hub, request, store, slug)
        if len(parts) in (4, 5) and parts[3] == "items":
            return await collections.items(hub, request, store, slug, parts[4] if len(parts) == 5 else None)
    if head in REPO_TYPES:
        if len(parts) == 1 and method == "GET":
            return await repos.list_repos(hub, request, REPO_TYPES[head])
        if len(parts) >= 3:
            return await _repo_api(hub, request, REPO_TYPES[head], parts[1:])
    raise NOT_FOUND


async def _git(hub: HubContext, request: web.Request, parts: list[str]) -> web.StreamResponse:
    """`/{prefix}{ns}/{name}/resolve/...` downloads and `/{prefix}{ns}/{name}.git/info/lfs/...`."""
    repo_type = "model"
    if parts and parts[0] in ("datasets", "spaces"):
        repo_type, parts = REPO_TYPES[parts[0]], parts[1:]
    if len(parts) < 3:
        raise NOT_FOUND
    repo_id, rest = f"{parts[0]}/{parts[1]}", parts[2:]
    if repo_id.endswith(".git") and rest[:3] == ["info", "lfs", "objects"]:
        repo_id = repo_id[: -len(".git")]
        if rest[3:] == ["batch"] and request.method == "POST":
            meta, _ = hub.repo_for_write(request, repo_type, repo_id)
            return await upload.lfs_batch(hub, request, meta)
        if len(rest) == 5 and rest[3] == "upload" and request.method == "PUT":
            # The upload URL is signed by the batch answer, as the Hub's S3 URLs are: no token needed.
            return await upload.lfs_upload(hub, request, repo_type, repo_id, rest[4])
        raise NOT_FOUND
    if rest[0] == "resolve" and len(rest) >= 3 and request.method in ("GET", "HEAD"):
        meta = hub.repo_for_read(request, repo_type, repo_id)
        return await files.resolve(hub, request, meta, *_rev_and_path(rest[1:]))
    raise NOT_FOUND


async def dispatch(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    parts = [unquote(p) for p in request.rel_url.raw_path.split("/")[1:]]
    if parts and parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    try:
        if parts and parts[0] == "api":
            return await _api(hub, request, parts[1:])
        return await _git(hub, request, parts)
    except HubError as err:
        return error_response(err)
    except web.HTTPRequestEntityTooLarge:
        return error_response(HubError(413, f"Request body too large (the limit is {MAX_JSON_BODY} bytes)"))
    except Exception:  # noqa: BLE001 - a test server answers 500 with the traceback logged, like the Hub
        # the path only: a query string can carry an upload URL's signature
        log.exception("loopback hub: %s %s failed", request.method, request.path)
        return json_response({"error": "Internal server error"}, status=500)


async def _request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Request-Id", request.headers.get("X-Request-Id") or uuid.uuid4().hex)


def create_app(
    storage: HubStorage,
    tokens: dict[str, str] | None = None,
    orgs: dict[str, list[str]] | None = None,
    injected: faults.Faults | None = None,
) -> web.Application:
    """The aiohttp application of a loopback Hub over `storage`, with `tokens` (token -> user) and `orgs`.

    `injected` (tests) scripts failures: see `faults.Faults`.
    """
    middlewares = [faults.middleware(injected)] if injected is not None else []
    # Handlers read bodies through `context.read_body` with their own limits; this caps form bodies (paths-info).
    app = web.Application(client_max_size=MAX_JSON_BODY, middlewares=middlewares)
    app[HUB_KEY] = HubContext(
        storage=storage, tokens=dict(tokens or {}), orgs={k: list(v) for k, v in (orgs or {}).items()}
    )
    app[COLLECTIONS_KEY] = CollectionStore(storage.root)
    app.on_response_prepare.append(_request_id)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
