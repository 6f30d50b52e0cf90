"""Hub collections for the zoo: a recipe's datasets and checkpoints on one shelf, each with a note.

`--collection TITLE` creates the collection in the repo's namespace (or reuses the one with that title);
a slug (`owner/title-<24 hex>`) names an existing one. Notes carry each item's version and eval scores, and
are updated when the same repo is published again.
"""

from __future__ import annotations

import re

from factory.errors import FactoryError
from factory.publish.hub import Hub

SLUG = re.compile(r"^[\w.-]+/[\w.-]+-[0-9a-f]{24}$")
NOTE_MAX = 500  # the Hub's limit on a collection item note


def add_to_collection(hub: Hub, collection: str, *, namespace: str, item_id: str, item_type: str, note: str,
                      private: bool = False) -> tuple[str, str]:
    """Put `item_id` in the collection (creating it if needed) with `note`; returns (slug, title)."""
    api = hub.api
    try:
        if SLUG.match(collection):
            coll = hub.call("read the collection", api.get_collection, collection)
        else:
            coll = hub.call("create the collection", api.create_collection, title=collection, namespace=namespace,
                            private=private, exists_ok=True)
        note = note[:NOTE_MAX]
        item = next((i for i in coll.items if i.item_type == item_type and i.item_id.lower() == item_id.lower()),
                    None)
        if item is None:
            hub.call("add to the collection", api.add_collection_item, coll.slug, item_id=item_id,
                     item_type=item_type, note=note, exists_ok=True)
        elif item.note != note:
            hub.call("update the collection note", api.update_collection_item, coll.slug, item.item_object_id,
                     note=note)
    except FactoryError:
        raise
    except Exception as exc:
        raise hub.explain(exc, f"add {item_id} to collection {collection!r}") from None
    return coll.slug, coll.title
