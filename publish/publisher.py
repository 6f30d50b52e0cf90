"""Publish a plan: secret check, the Hub commit and tags, the collection, and the zoo log entry.

    plan, report = plan_dataset(store, "evol", PublishOptions(repo="you/evol"))
    enforce(report)
    outcome = execute(plan, home=store.home)   # token: $HF_TOKEN or the saved login

This is what `factory publish` and a recipe's publish stage call; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from factory.errors import FactoryError
from factory.publish import guard, zoo
from factory.publish.collections import add_to_collection
from factory.publish.hub import Hub, RetryPolicy, SyncResult, resolve_token
from factory.publish.plan import Plan
from factory.store.manifest import now_iso


@dataclass
class Outcome:
    plan: Plan
    result: SyncResult
    collection: str | None = None  # slug

    def message(self) -> str:
        r, p = self.result, self.plan
        where = f"{p.kind} repo {p.repo_id}"
        if r.changed:
            text = f"published {p.what} to {where} (commit {r.commit[:8]}"
        else:
            text = f"unchanged: {where} already has {p.what} (commit {r.commit[:8]}, no new commit"
        text += f"; tagged {', '.join(r.tags_created)})" if r.tags_created else ")"
        if self.collection:
            text += f"; in collection {self.collection}"
        return text


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def check_secrets(plan: Plan, home: Path | None, token: str | None = None) -> None:
    guard.scan([(f.path_in_repo, f.source) for f in plan.all_files()], guard.secret_values(home, token))


def execute(plan: Plan, *, home: Path, token: str | None = None, collection: str | None = None,
            hub_endpoint: str | None = None, retry: RetryPolicy | None = None) -> Outcome:
    """Push `plan` (see module docstring) and log it under `home`; raises `FactoryError` with one line."""
    token, source = resolve_token(token)
    check_secrets(plan, home, token)
    hub = Hub(token, source, hub_endpoint, retry)
    result = hub.publish(plan)
    slug = title = None
    collection = collection or plan.collection
    if collection:
        try:
            slug, title = add_to_collection(hub, collection, namespace=plan.repo_id.split("/")[0],
                                            item_id=plan.repo_id, item_type=plan.kind, note=plan.note,
                                            private=plan.private)
        except FactoryError as exc:
            raise FactoryError(f"published {plan.what} to {plan.repo_id} (commit {result.commit[:8]}) but the "
                               f"collection step failed: {exc}") from None
    zoo.append(home, {
        **plan.record, "published": now_iso(), "endpoint": hub.endpoint, "repo": plan.repo_id, "url": result.url,
        "revision": plan.revision, "commit": result.commit, "tags": plan.tags, "private": plan.private,
        "changed": result.changed, "collection": {"slug": slug, "title": title} if slug else None,
        "note": plan.note,
    })
    return Outcome(plan, result, slug)
