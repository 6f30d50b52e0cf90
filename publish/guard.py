"""The last check before anything leaves the machine: no secret value in any file about to be pushed.

Secrets are the values of the usual API-key variables, of the variables `api_key_env:` names in the home config
and those this process read keys from, of any environment variable with a secret-looking name,
of secret-named keys in `$FACTORY_HOME/config.yaml`, and the Hub token in use. Text files are searched as
bytes; Parquet shards row by row (compressed pages would hide a key from a byte search). A hit names the file
and where the secret came from, never the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.errors import FactoryError
from factory.secrets import is_secret_key, secret_env_names

_LOOKS_SECRET = re.compile(r"^[^\s/\\]{8,}$")  # a key or token: no spaces or slashes, 8+ characters


def _config_secrets(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _config_secrets(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _config_secrets(v, key)
    elif isinstance(value, str) and key and is_secret_key(key):
        yield value


def _key_env_names(value: Any) -> Iterator[str]:
    """Every `api_key_env: NAME` in the home config, at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "api_key_env" and isinstance(v, str):
                yield v
            else:
                yield from _key_env_names(v)
    elif isinstance(value, list):
        for v in value:
            yield from _key_env_names(v)


def secret_values(home: Path | None = None, token: str | None = None) -> dict[str, str]:
    """secret value -> where it comes from (a name safe to print)."""
    found: dict[str, str] = {}
    config = home / "config.yaml" if home else None
    data: Any = {}
    if config is not None and config.is_file():
        import yaml

        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
            data = {}
    # variables named by `api_key_env:` hold keys whatever they are called (`MY_LLM`, not `..._KEY`)
    key_envs = {*secret_env_names(), *_key_env_names(data)}
    for name, value in os.environ.items():
        if (name in key_envs or is_secret_key(name)) and _LOOKS_SECRET.match(value or ""):
            found.setdefault(value, f"${name}")
    for value in _config_secrets(data):
        if _LOOKS_SECRET.match(value):
            found.setdefault(value, f"a secret in {config.name if config else 'config.yaml'}")
    if token:
        found.setdefault(token, "the Hub token")
    return found


def _parquet_texts(path: Path) -> Iterator[bytes]:
    import polars as pl

    for frame in pl.read_parquet(path).iter_slices(5_000):
        yield frame.write_ndjson().encode()


def _file_chunks(path: Path, overlap: int, size: int = 8 << 20) -> Iterator[bytes]:
    """A file in chunks that overlap by `overlap` bytes, so a needle across a boundary is still found."""
    tail = b""
    with open(path, "rb") as fh:
        while block := fh.read(size):
            yield tail + block
            tail = block[-overlap:] if overlap else b""


def scan(files: list[tuple[str, Path | bytes]], secrets: dict[str, str]) -> None:
    """Raise if any file's content contains a secret value (the message names the file and the source)."""
    needles = [(v.encode(), where) for v, where in secrets.items()]
    if not needles:
        return
    for path_in_repo, source in files:
        if isinstance(source, bytes):
            chunks: Iterator[bytes] = iter([source])
        elif source.suffix == ".parquet":
            chunks = _parquet_texts(source)
        else:
            chunks = _file_chunks(source, max(len(n) for n, _ in needles))
        for chunk in chunks:
            for needle, where in needles:
                if needle in chunk:
                    raise FactoryError(f"refusing to publish: {path_in_repo} contains {where}; remove it first")
