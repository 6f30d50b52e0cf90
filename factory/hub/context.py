"""What every handler of the loopback Hub shares: storage, users and orgs, auth checks, JSON answers.

Auth mirrors the Hub: an unknown token is a 401; a private repo the caller may not read is a 404
`RepoNotFound` (never a 403); writing to a namespace the caller does not belong to is a 403.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .errors import HubError, forbidden, repo_not_found, unauthorized
from .storage import HubStorage, RepoMeta

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
MAX_JSON_BODY = 16 * 1024 * 1024  # preupload of ~100k files fits; more is not a client talking


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers=headers, content_type="application/json"
    )


def error_response(err: HubError) -> web.Response:
    headers = dict(err.headers)
    if err.code:
        headers["X-Error-Code"] = err.code
    return json_response({"error": err.message, **err.extra}, status=err.status, headers=headers)


@dataclass
class HubContext:
    """Server-wide state handed to every handler."""

    storage: HubStorage
    tokens: dict[str, str]
    orgs: dict[str, list[str]]
    secret: bytes = field(default_factory=lambda: os.urandom(32))

    # Identity --------------------------------------------------------------------------------------
    def user(self, request: web.Request, required: bool = False) -> str | None:
        """The user behind the Bearer token; 401 for an unknown token, or for none when `required`."""
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not token:
            if required:
                raise unauthorized("You must be authenticated to access this resource")
            return None
        # Every known token is compared, each in constant time, so the answer's timing says nothing about them.
        user = None
        for known, name in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                user = name
        if user is None:
            raise unauthorized()
        return user

    def namespaces(self, user: str | None) -> set[str]:
        if user is None:
            return set()
        return {user.lower(), *(o.lower() for o in self.orgs.get(user, []))}

    def all_orgs(self) -> set[str]:
        return {o.lower() for orgs in self.orgs.values() for o in orgs}

    def can_write(self, user: str | None, namespace: str) -> bool:
        if user is not None and len(set(self.tokens.values())) == 1:
            return True  # a single-user hub (`factory hub serve` for one team): that user may write anywhere
        return namespace.lower() in self.namespaces(user)

    def can_read(self, user: str | None, meta: RepoMeta) -> bool:
        return not meta.private or self.can_write(user, meta.id.split("/")[0])

    # Repos -----------------------------------------------------------------------------------------
    def repo_for_read(self, request: web.Request, repo_type: str, repo_id: str) -> RepoMeta:
        user = self.user(request)
        meta = self.storage.get_repo(repo_type, repo_id)
        if meta is None or not self.can_read(user, meta):
            raise repo_not_found()
        return meta

    def repo_for_write(self, request: web.Request, repo_type: str, repo_id: str) -> tuple[RepoMeta, str]:
        user = self.user(request, required=True)
        assert user is not None
        meta = self.storage.get_repo(repo_type, repo_id)
        if meta is None or not self.can_read(user, meta):
            raise repo_not_found()
        if not self.can_write(user, meta.id.split("/")[0]):
            raise forbidden(f"You don't have the rights to write to {meta.id}")
        return meta, user

    # URLs ------------------------------------------------------------------------------------------
    @staticmethod
    def base_url(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def repo_url(self, request: web.Request, meta: RepoMeta) -> str:
        return f"{self.base_url(request)}/{URL_PREFIX[meta.type]}{meta.id}"

    def sign(self, *parts: str) -> str:
        return hmac.new(self.secret, "\0".join(parts).encode(), hashlib.sha256).hexdigest()[:32]

    def signed(self, signature: str, *parts: str) -> bool:
        return hmac.compare_digest(signature.encode(), self.sign(*parts).encode())


async def read_body(request: web.Request, limit: int = MAX_JSON_BODY) -> bytes:
    """The request body, refused with 413 once it passes `limit` bytes (before reading it, when it says so)."""
    too_large = HubError(413, f"Request body too large (the limit is {limit} bytes)")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes | str, what: str = "JSON body") -> Any:
    """JSON from a client: malformed, non-UTF-8 or absurdly nested input is a 400, never a 500."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise HubError(400, f"Invalid {what}: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HubError(400, f"Invalid {what}: {str(exc)[:200]}") from None


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body ({} when empty); 400 when it is not a JSON object, 413 when too large."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise HubError(400, "Expected a JSON object")
    return data


def int_param(request: web.Request, name: str, default: int, low: int = 0, high: int = 10**9) -> int:
    """An integer query parameter within [low, high]; 400 when it is not one."""
    raw = request.query.get(name, "")
    if raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or not low <= int(raw) <= high:
        raise HubError(400, f"Invalid value for {name}: expected an integer in [{low}, {high}]")
    return int(raw)


def as_str(value: Any, what: str, default: str = "", max_len: int = 10_000) -> str:
    """A string field of a JSON body (`default` when absent or null); 400 for any other type or a huge one."""
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > max_len:
        raise HubError(400, f"Invalid {what}: expected a string of at most {max_len} characters")
    return value
