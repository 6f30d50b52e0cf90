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
MAX_MATCHES = 1_000_000


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
        wanted = _patterns(configs)
        # every pattern is matched against every Parquet file: the README's author picks the patterns, a reader
        # pays for them, so their product is capped (about a second of matching)
        if len(wanted) * len(files) > MAX_MATCHES:
            raise HubError(
                400,
                f"README.md configs: {len(wanted)} data_files patterns over {len(files)} Parquet "
                f"files is more matching than this server does per request ({MAX_MATCHES:,})",
            )
        for name, split, pattern in wanted:
            matched = [f for f in files if fnmatch.fnmatchcase(f, pattern)]
            layout.setdefault(name, {}).setdefault(split, []).extend(matched)
        return layout
    for path in files:
        layout.setdefault("default", {}).setdefault(_split_of(path), []).append(path)
    return layout


def _patterns(configs: list[Any]) -> list[tuple[str, str, str]]:
    """(config, split, glob) for each `data_files` pattern of the README's `configs:`; entries of another shape
    (a number where a glob goes, a list as a split) are skipped, as a card the Hub cannot read."""
    out = []
    for cfg in (c for c in configs if isinstance(c, dict)):
        name, data_files = str(cfg.get("config_name", "default")), cfg.get("data_files") or []
        for spec in [data_files] if isinstance(data_files, (str, dict)) else _list(data_files):
            if isinstance(spec, str):
                split, globs = "train", spec
            elif isinstance(spec, dict) and not isinstance(spec.get("split"), (list, dict)):
                split, globs = spec.get("split", "train"), spec.get("path")
            else:
                continue
            out += [(name, str(split), g) for g in ([globs] if isinstance(globs, str) else _list(globs))]
    return [(name, split, g) for name, split, g in out if isinstance(g, str)]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


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
