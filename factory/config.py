"""Configs: pydantic models with `extra="forbid"`, filled from a YAML file and `--set key=value` flags.

The same model validates both, so a typo in either is an error that names the key (and the closest valid
ones). `--set` takes a dotted key (`training.max_steps=3`) or, where it names exactly one nested field, the
flat one (`max_steps=3`); a `--set` value is read as YAML, or as the plain text when that is what the
field's type takes (`--set system=yes` is the text "yes"), the field's pydantic type deciding.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from factory.errors import BadInput

T = TypeVar("T", bound="StrictModel")


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, assignments are validated."""

    # nan and inf are never a setting: a temperature or price of inf reaches a provider, or a budget check, as nonsense
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @classmethod
    def open_sections(cls) -> dict[str, Iterable[str]]:
        """Dict sections whose keys another library defines (section -> its keys), so a flat `--set` finds them.

        Called only when a flat key is not one of the model's own fields (it may import that library).
        """
        return {}


def parse_sets(pairs: list[str] | tuple[str, ...], model: type[BaseModel] | None = None) -> dict[str, Any]:
    """Turn ["a.b=1", "c=x"] into {"a": {"b": 1}, "c": "x"}; values are read as YAML scalars.

    With `model`, a flat key is resolved to the one nested field it names (`resolve_key`) and each value is
    read the way its field's type takes it.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--set expects key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if model is not None:
            key = resolve_key(model, key)
            value = _as_field_type(model, key, value, raw)
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise BadInput(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = value
    return out


def field_paths(model: type[BaseModel]) -> dict[str, Any]:
    """Every dotted key of `model` and its nested models -> its type annotation."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        out[name] = field.annotation
        sub = _submodel(field.annotation)
        if sub is not None:
            out.update({f"{name}.{path}": t for path, t in field_paths(sub).items()})
    return out


def resolve_key(model: type[BaseModel], key: str) -> str:
    """The dotted key a `--set` key means: itself if dotted or a top-level field, else the one field it names."""
    if "." in key or key in model.model_fields:
        return key
    known = list(field_paths(model))
    opens = model.open_sections() if issubclass(model, StrictModel) else {}
    known += [f"{section}.{k}" for section, keys in opens.items() for k in sorted(keys)]
    found = [path for path in known if path.rsplit(".", 1)[-1] == key]
    if len(found) == 1:
        return found[0]
    if found:
        raise BadInput(f"--set {key}: ambiguous, it could be {' or '.join(found)}; write the full key")
    raise BadInput(f"config: unknown key {key!r}{_suggest(key, known)}")


def _suggest(key: str, known: list[str]) -> str:
    """'; did you mean ...?' with the closest valid keys (dotted or by their last part), or ''."""
    by_leaf: dict[str, str] = {}
    for path in known:
        by_leaf.setdefault(path.rsplit(".", 1)[-1], path)
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.75)
    close += [by_leaf[m] for m in difflib.get_close_matches(leaf, list(by_leaf), n=3) if by_leaf[m] not in close]
    return f"; did you mean {' or '.join(repr(c) for c in close[:3])}?" if close else ""


def _as_field_type(model: type[BaseModel], key: str, value: Any, raw: str) -> Any:
    """The YAML reading of a `--set` value, or its raw text where only the text fits the field's type."""
    annotation = field_paths(model).get(key)
    if annotation is None or value == raw or _submodel(annotation) is not None:
        return value
    adapter = _adapter(annotation)
    if adapter is None:
        return value
    for candidate in (value, raw):
        try:
            adapter.validate_python(candidate)
            return candidate
        except ValidationError:
            continue
    return value  # neither fits: the model's validation names the key and the problem


def _adapter(annotation: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(annotation, config=ConfigDict(arbitrary_types_allowed=True))
    except Exception:  # a type pydantic cannot check (a library's own class): leave it to the library
        return None


def _submodel(annotation: Any) -> type[BaseModel] | None:
    args = typing.get_args(annotation) or (annotation,)
    models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    return models[0] if len(models) == 1 else None


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


def validation_message(exc: ValidationError, where: str = "config", model: type[BaseModel] | None = None) -> str:
    """One line naming the first bad key and what is wrong with it (with the closest valid keys for a typo)."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(root)"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown key {key!r}" + (_suggest(key, list(field_paths(model))) if model else "")
    message = err["msg"].removeprefix("Value error, ")  # a validator's own message says what is wrong
    return f"{where}: {key}: {message}"


def build_config(model: type[T], file: str | Path | None = None, sets: list[str] | tuple[str, ...] = (),
                 overrides: dict[str, Any] | None = None, **defaults: Any) -> T:
    """Validate `defaults` < YAML file < `--set` flags < `overrides` (options typed on the command line)."""
    data: dict[str, Any] = dict(defaults)
    if file:
        data = deep_merge(data, read_yaml(file))
    data = deep_merge(data, parse_sets(sets, model))
    data = deep_merge(data, overrides or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadInput(validation_message(exc, model=model)) from None
