"""`/api/datasets/{id}/parquet[/{config}/{split}]`: the Parquet files of a dataset repo, by config and split.

The real Hub answers from its `refs/convert/parquet` export. The loopback Hub has no converter, so it lists
the Parquet files already in the repo, grouped by the README's `configs:` (`data_files` with `split` and
`path` globs), or under `default` with the split guessed from the file name.
"""

from __future__ import annotations

import fnmatch
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .context import HubContext, json_response
from .errors import HubError
from .repos import card_data
from .storage import RepoMeta

SPLITS = ("train", "validation", "test")


def _split_of(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    for split in SPLITS:
        if name.startswith(split) or f"/{split}" in f"/{path.lower()}":
            return split
    return "train"


def parquet_layout(hub: HubContext, meta: RepoMeta, rev: str) -> dict[str, dict[str, list[str]]]:
    """config -> split -> Parquet paths at `rev`."""
    commit = hub.storage.resolve(meta, rev)
    files = sorted(p for p in commit.tree if p.endswith(".parquet"))
    configs = (card_data(hub, commit) or {}).get("configs")
    layout: dict[str, dict[str, list[str]]] = {}
    if isinstance(configs, list) and configs:
        for cfg in configs:
            if not isinstance(cfg, dict):
                continue
            name = str(cfg.get("config_name", "default"))
            data_files: Any = cfg.get("data_files") or []
            if isinstance(data_files, (str, dict)):
                data_files = [data_files]
            for spec in data_files:
                split, patterns = (
                    ("train", spec) if isinstance(spec, str) else (spec.get("split", "train"), spec.get("path"))
                )
                for pattern in [patterns] if isinstance(patterns, str) else patterns or []:
                    matched = [f for f in files if fnmatch.fnmatchcase(f, pattern)]
                    layout.setdefault(name, {}).setdefault(str(split), []).extend(matched)
        return layout
    for path in files:
        layout.setdefault("default", {}).setdefault(_split_of(path), []).append(path)
    return layout


async def parquet(hub: HubContext, request: web.Request, meta: RepoMeta, rest: list[str]) -> web.Response:
    commit = hub.storage.resolve(meta, "main")
    base = f"{hub.base_url(request)}/datasets/{meta.id}/resolve/{commit.id}/"
    layout = parquet_layout(hub, meta, commit.id)
    urls = {c: {s: [base + quote(p) for p in ps] for s, ps in splits.items()} for c, splits in layout.items()}
    headers = {"X-Revision": commit.id}
    if not rest:
        return json_response(urls, headers=headers)
    if len(rest) == 1 and rest[0] in urls:
        return json_response(urls[rest[0]], headers=headers)
    if len(rest) == 2 and rest[1] in urls.get(rest[0], {}):
        return json_response(urls[rest[0]][rest[1]], headers=headers)
    raise HubError(404, "Parquet files not found for this config or split")
