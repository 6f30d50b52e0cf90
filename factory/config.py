"""Configs: pydantic models with `extra="forbid"`, filled from a YAML file and `--set key=value` flags.

The same model validates both, so a typo in either is an error that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from factory.errors import BadInput

T = TypeVar("T", bound="StrictModel")


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_sets(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ["a.b=1", "c=x"] into {"a": {"b": 1}, "c": "x"}; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--set expects key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BadInput(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = value
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); is it a binary file?") from None
    except RecursionError:
        raise BadInput(f"{path}: YAML nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise BadInput(f"{path}{where}: not valid YAML") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: expected a mapping of config keys at the top level")
    return data


def validation_message(exc: ValidationError, where: str = "config") -> str:
    """One line naming the first bad key and what is wrong with it."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(root)"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key {key!r}"
    message = err["msg"].removeprefix("Value error, ")  # a validator's own message says what is wrong
    return f"{where}: {key}: {message}"


def build_config(model: type[T], file: str | Path | None = None, sets: list[str] | tuple[str, ...] = (),
                 **defaults: Any) -> T:
    """Validate `defaults` < YAML file < `--set` flags against `model`."""
    data: dict[str, Any] = dict(defaults)
    if file:
        data = deep_merge(data, read_yaml(file))
    data = deep_merge(data, parse_sets(sets))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadInput(validation_message(exc)) from None
