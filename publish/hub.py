"""The Hub side of a publish: token, retries, repo checks, one atomic commit, tags.

Everything goes through `huggingface_hub.HfApi` (so `HF_ENDPOINT`, `HF_TOKEN` and the token saved by
`hf auth login` work as users expect). Transient answers (429, 5xx, dropped connections) are retried with
exponential backoff, jitter and `Retry-After`; the files of a publish land in a single commit whose parent is
the revision they were compared against, so a reader sees the old version or the new one, never a mix.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from factory.errors import BadInput, FactoryError
from factory.publish.plan import Plan

log = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base: float = 1.0  # seconds before the first retry; doubled each time, with jitter
    cap: float = 30.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """`FACTORY_HUB_RETRIES` (attempts) and `FACTORY_HUB_BACKOFF` (first delay, seconds) override the defaults."""
        try:
            return cls(attempts=max(1, int(os.environ.get("FACTORY_HUB_RETRIES", cls.attempts))),
                       base=max(0.0, float(os.environ.get("FACTORY_HUB_BACKOFF", cls.base))))
        except ValueError:
            raise BadInput("FACTORY_HUB_RETRIES must be an integer and FACTORY_HUB_BACKOFF a number") from None

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), 60.0)
        return min(self.cap, self.base * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _transport_error(exc: BaseException) -> bool:
    """A dropped or refused connection or a timeout; matched by name, as the client's HTTP library varies
    (httpx, or httpx2 in recent huggingface_hub releases)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any(c.__name__ in ("TransportError", "TimeoutException", "NetworkError") for c in type(exc).__mro__)


def resolve_token(explicit: str | None) -> tuple[str, str]:
    """(token, where it came from): --token, then HF_TOKEN, then huggingface_hub's saved login."""
    if explicit:
        return explicit, "--token"
    from huggingface_hub import get_token

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if os.environ.get(var):
            return os.environ[var], f"${var}"
    token = get_token()
    if token:
        return token, "the token saved by `hf auth login`"
    raise BadInput("no Hugging Face token: pass --token, set HF_TOKEN, or run `hf auth login`")


@dataclass
class SyncResult:
    commit: str
    changed: bool
    created_repo: bool
    tags_created: list[str]
    url: str


class Hub:
    """`HfApi` with our retry policy, our error messages and the publish steps."""

    def __init__(self, token: str | None, token_source: str = "the token", endpoint: str | None = None,
                 retry: RetryPolicy | None = None):
        from huggingface_hub import HfApi, constants

        self.api = HfApi(endpoint=endpoint, token=token)  # None: the client's own lookup (HF_TOKEN, saved login)
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self.retry = retry or RetryPolicy.from_env()
        self._token, self._token_source = token, token_source

    # -- calls -------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, retried while the Hub answers transiently; other errors propagate."""
        for attempt in range(1, self.retry.attempts + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                status = status_of(exc)
                if not (status in TRANSIENT or (status is None and _transport_error(exc))):
                    raise
                if attempt == self.retry.attempts:
                    reason = f"HTTP {status}" if status else type(exc).__name__
                    raise FactoryError(f"the Hub at {self.endpoint} failed to {what} ({reason}) "
                                       f"{self.retry.attempts} times; giving up") from None
                response = getattr(exc, "response", None)
                wait = self.retry.delay(attempt, response.headers.get("Retry-After") if response is not None
                                        else None)
                log.warning("Hub: %s failed (%s); retry %d of %d in %.1f s", what, status or type(exc).__name__,
                            attempt, self.retry.attempts - 1, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def explain(self, exc: Exception, what: str) -> FactoryError:
        """One line for a Hub error that was not retried; never the token."""
        status = status_of(exc)
        if status == 401:
            return FactoryError(f"the Hub at {self.endpoint} rejected {self._token_source} (401 Unauthorized): "
                                "pass a valid --token or set HF_TOKEN")
        message = getattr(exc, "server_message", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        message = message.replace(self._token, "***") if self._token else message
        if status == 403:
            return FactoryError(f"not allowed to {what} (403 Forbidden): {message}")
        if status is None and _transport_error(exc):
            return FactoryError(f"cannot reach the Hub at {self.endpoint}: {type(exc).__name__}: {message}")
        return FactoryError(f"could not {what}: {f'HTTP {status}: ' if status else ''}{message}")

    def whoami(self) -> str:
        try:
            return str(self.call("check the token", self.api.whoami)["name"])
        except FactoryError:
            raise
        except Exception as exc:
            raise self.explain(exc, "check the token") from None

    # -- the publish -------------------------------------------------------------------------------
    def publish(self, plan: Plan) -> SyncResult:
        """Create or check the repo, commit what changed (atomically), add the tags."""
        where = f"{plan.kind} repo {plan.repo_id}"
        try:
            self.whoami()
            created = self._ensure_repo(plan)
            if plan.revision != "main":
                self._ensure_branch(plan)
            commit, changed = self._commit(plan)
        except BadInput:
            raise
        except FactoryError as exc:
            raise FactoryError(f"{exc}; nothing was published to {where}") from None
        except Exception as exc:
            raise self.explain(exc, f"publish to {where}") from None
        try:
            tags = self._tag(plan, commit)
        except Exception as exc:
            err = exc if isinstance(exc, FactoryError) else self.explain(exc, "create a tag")
            raise FactoryError(f"published {plan.what} to {where} (commit {commit[:8]}) but could not tag it: "
                               f"{err}; rerun the same command to add the tag") from None
        prefix = "datasets/" if plan.kind == "dataset" else ""
        return SyncResult(commit, changed, created, tags, f"{self.endpoint}/{prefix}{plan.repo_id}")

    def _ensure_repo(self, plan: Plan) -> bool:
        from huggingface_hub.errors import RepositoryNotFoundError

        kind, repo = plan.kind, plan.repo_id
        try:
            info = self.call("read the repo", self.api.repo_info, repo, repo_type=kind)
        except RepositoryNotFoundError:
            info = None
        if info is None:
            other = "dataset" if kind == "model" else "model"
            if self.call("check the repo name", self.api.repo_exists, repo, repo_type=other):
                raise BadInput(f"{repo} is a {other} repo: pushing a {kind} there is refused "
                               f"(name collision with a repo of another type); choose another --repo")
            try:
                self.call("create the repo", self.api.create_repo, repo, repo_type=kind, private=plan.private,
                          exist_ok=True)
            except Exception as exc:
                raise self.explain(exc, f"create {kind} repo {repo}") from None
            return True
        if plan.private and not info.private:
            raise BadInput(f"{kind} repo {repo} exists and is public: --private cannot apply to it; make it "
                           "private on the Hub first, or publish without --private")
        return False

    def _ensure_branch(self, plan: Plan) -> None:
        refs = self.call("list refs", self.api.list_repo_refs, plan.repo_id, repo_type=plan.kind)
        if plan.revision not in {b.name for b in refs.branches}:
            self.call("create the branch", self.api.create_branch, plan.repo_id, branch=plan.revision,
                      repo_type=plan.kind, exist_ok=True)

    def _remote(self, plan: Plan) -> tuple[str, dict[str, tuple[str | None, str | None]]]:
        info = self.call("read the repo", self.api.repo_info, plan.repo_id, repo_type=plan.kind,
                         revision=plan.revision, files_metadata=True)
        files = {s.rfilename: (s.lfs.sha256 if s.lfs else None, s.blob_id) for s in info.siblings or []}
        return info.sha, files

    def _commit(self, plan: Plan) -> tuple[str, bool]:
        """Commit the difference; no difference, no commit. A commit whose answer was lost shows up as no
        difference on the next look, and a moved branch (412) is compared again."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        attempted = False
        for _ in range(3):
            head, remote = self._remote(plan)
            ops: list[Any] = [CommitOperationAdd(f.path_in_repo, f.source) for f in plan.all_files()
                              if f.path_in_repo not in remote or not f.same_as(*remote[f.path_in_repo])]
            ops += [CommitOperationDelete(p) for p in sorted(remote) if plan.is_stale(p)]
            if not ops:
                return head, attempted
            attempted = True
            try:
                info = self.call("commit", self.api.create_commit, plan.repo_id, ops, repo_type=plan.kind,
                                 revision=plan.revision, commit_message=plan.commit_message, parent_commit=head)
            except Exception as exc:
                if status_of(exc) == 412:  # the branch moved since we looked (or our own commit landed)
                    continue
                raise
            return info.oid, True
        raise FactoryError(f"{plan.repo_id} kept changing while publishing; nothing was published, try again")

    def _tag(self, plan: Plan, commit: str) -> list[str]:
        if not plan.tags:
            return []
        refs = self.call("list tags", self.api.list_repo_refs, plan.repo_id, repo_type=plan.kind)
        existing = {t.name: t.target_commit for t in refs.tags}
        made = []
        for tag in plan.tags:
            if tag in existing:
                if existing[tag] != commit:
                    plan.notes.append(f"tag {tag} already exists at {existing[tag][:8]}; left as it is")
                continue
            try:
                self.call("create a tag", self.api.create_tag, plan.repo_id, tag=tag, revision=commit,
                          repo_type=plan.kind, tag_message=f"factory: {plan.what}")
            except Exception as exc:
                if status_of(exc) != 409:  # 409: created by a try whose answer was lost
                    raise
            made.append(tag)
        return made
