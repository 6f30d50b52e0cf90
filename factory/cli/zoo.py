"""`factory zoo list [--collection SLUG]`: what this factory home has published, where, and how it scored."""

from __future__ import annotations

import json

import click

from factory.cli._fmt import short, table, when
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.group()
def zoo() -> None:
    """The model zoo: datasets and checkpoints published from this factory home."""


@zoo.command("list")
@click.option("--collection", "collection", metavar="SLUG",
              help="Show this Hub collection's items (a slug, or the title used with publish --collection).")
@click.option("--all", "show_all", is_flag=True, help="Every publish, not only the latest per repo.")
@click.option("--token", metavar="TOKEN", help="Hub token for a private collection (default: $HF_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def list_(app: App, collection: str | None, show_all: bool, token: str | None, as_json: bool) -> None:
    """List published repos: kind, repo, version, commit, eval scores, lineage, collection."""
    from factory.publish import zoo as zoo_log

    records = zoo_log.read(app.home)
    if collection:
        _collection(app, records, collection, token, as_json)
        return
    shown = records if show_all else list(zoo_log.latest_by_repo(records).values())
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    if not shown:
        click.echo(f"nothing published from {app.home} yet; try: factory publish NAME --repo you/NAME")
        return
    rows = [[when(r.get("published", "")), r.get("kind"), r.get("repo"), r.get("version", ""),
             (r.get("commit") or "")[:8], short(zoo_log.scores_text(r.get("eval")) or "-", 40),
             short(zoo_log.lineage_text(r), 60), (r.get("collection") or {}).get("title") or "-"]
            for r in shown]
    click.echo(table(["published", "kind", "repo", "version", "commit", "eval", "lineage", "collection"], rows))


def _collection(app: App, records: list[dict], collection: str, token: str | None, as_json: bool) -> None:
    """A Hub collection's items, joined to the local log for versions and lineage."""
    from factory.errors import BadInput, FactoryError
    from factory.publish import zoo as zoo_log
    from factory.publish.collections import SLUG
    from factory.publish.hub import Hub

    slug = collection
    if not SLUG.match(slug):
        slugs = [c["slug"] for r in records if (c := r.get("collection")) and c.get("title") == collection]
        if not slugs:
            raise BadInput(f"no collection {collection!r} in this home's publish log; pass the collection's slug")
        slug = slugs[-1]
    hub = Hub(token, "--token" if token else "the default token")
    try:
        coll = hub.call("read the collection", hub.api.get_collection, slug)
    except FactoryError:
        raise
    except Exception as exc:
        raise hub.explain(exc, f"read collection {slug}") from None
    latest = zoo_log.latest_by_repo(records)
    items = []
    for item in coll.items:
        rec = latest.get((hub.endpoint, item.item_type, item.item_id.lower()), {})
        items.append({"type": item.item_type, "repo": item.item_id, "note": item.note, "version": rec.get("version"),
                      "commit": rec.get("commit"), "eval": rec.get("eval"), "lineage": zoo_log.lineage_text(rec)
                      if rec else None})
    if as_json:
        click.echo(json.dumps({"slug": coll.slug, "title": coll.title, "items": items}, indent=2, default=str))
        return
    click.echo(f"{coll.title}  ({coll.slug}, {len(items)} items)")
    if items:
        click.echo(table(["kind", "repo", "version", "commit", "note", "lineage"],
                         [[i["type"], i["repo"], i["version"] or "-", (i["commit"] or "")[:8] or "-",
                           short(i["note"] or "-", 60), short(i["lineage"] or "-", 50)] for i in items]))
