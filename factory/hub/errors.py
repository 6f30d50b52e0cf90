"""Errors the loopback Hub answers with, shaped like the real Hub's so the client maps them to its exceptions.

The `huggingface_hub` client reads the `X-Error-Code` header (RepoNotFound, RevisionNotFound, EntryNotFound)
to raise `RepositoryNotFoundError`, `RevisionNotFoundError` or `EntryNotFoundError`, and shows the JSON
`error` field in its messages.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """An HTTP error answer: status, message, optional `X-Error-Code` and extra JSON fields."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra or {}
        self.headers = headers or {}


def repo_not_found() -> HubError:
    return HubError(404, "Repository not found", "RepoNotFound")


def revision_not_found(rev: str) -> HubError:
    return HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")


def entry_not_found(path: str, commit: str | None = None) -> HubError:
    headers = {"X-Repo-Commit": commit} if commit else None
    return HubError(404, f"Entry not found: {path}", "EntryNotFound", headers=headers)


def unauthorized(message: str = "Invalid credentials in Authorization header") -> HubError:
    return HubError(401, message, headers={"X-Error-Message": message})


def forbidden(message: str) -> HubError:
    return HubError(403, message, headers={"X-Error-Message": message})


def bad_request(message: str) -> HubError:
    return HubError(400, message)
