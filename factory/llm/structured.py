"""Structured outputs: a response schema (a pydantic model or a JSON Schema file) that every answer must match.

`load_schema("mypkg.models:Recipe")` or `load_schema("recipe.schema.json")` gives an `OutputSchema`:

* `json_schema` is the schema in the strict form the providers' native mechanisms want (every object closes
  with `additionalProperties: false` and lists all its properties as required; an optional field becomes
  nullable), sent as OpenAI's `response_format` (`json_schema`, `strict`), Anthropic's forced tool call and
  vLLM's guided decoding;
* `validate(text)` parses a reply (a bare object or a ```json fence) and validates it with pydantic; the
  runner retries a reply that fails and keeps the row failed with the validation error after the last try;
* `columns()` / `values(obj)` turn the top-level fields into typed columns (str, int, float, bool, list[str];
  anything nested is stored as a JSON string).
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from factory.errors import BadInput
from factory.hashing import canonical_json

_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)
_SIMPLE = {"string": str, "integer": int, "number": float, "boolean": bool}
_COLUMN = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


class InvalidOutput(ValueError):
    """A reply that is not JSON or does not match the schema; the message is the row's error."""


@dataclass(frozen=True)
class OutputSchema:
    name: str  # what the providers call the schema (OpenAI's json_schema name, Anthropic's tool)
    json_schema: dict[str, Any]
    model: type[BaseModel]

    def validate(self, text: str | None) -> dict[str, Any]:
        """The reply as a validated dict; raises `InvalidOutput` saying what is wrong."""
        if not text or not text.strip():
            raise InvalidOutput("invalid structured output: empty reply")
        raw = text.strip()
        fence = _FENCE.search(raw)
        if fence and not raw.startswith("{"):
            raw = fence.group(1)
        try:
            obj = self.model.model_validate_json(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise InvalidOutput(f"invalid structured output: {where}: {first['msg']} "
                                f"({exc.error_count()} error(s)); reply began {text[:60]!r}") from None
        return obj.model_dump(mode="json")

    def columns(self) -> dict[str, str]:
        """Top-level field -> column type name (`factory.pipeline.stage.polars_type` names)."""
        props = self.json_schema.get("properties", {})
        return {name: _column_type(spec, self.json_schema) for name, spec in props.items()}

    def values(self, obj: dict[str, Any] | None) -> dict[str, Any]:
        """The typed column values of a validated reply (all None for a failed row)."""
        out = {}
        for name, kind in self.columns().items():
            value = None if obj is None else obj.get(name)
            out[name] = json.dumps(value, ensure_ascii=False) if kind == "json" and value is not None else value
        return out

    def fingerprint(self) -> dict[str, Any]:
        """What the schema contributes to a version id: its name and strict JSON Schema."""
        return {"name": self.name, "json_schema": json.loads(canonical_json(self.json_schema))}


def load_schema(spec: str, reserved: tuple[str, ...] = ()) -> OutputSchema:
    """An `OutputSchema` from `module:Class` (a pydantic model) or a JSON Schema file; BadInput if neither."""
    path = Path(spec)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise BadInput(f"--schema: no such JSON Schema file: {spec}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise BadInput(f"--schema: {spec} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("type", "object") != "object" or "properties" not in raw:
            raise BadInput(f"--schema: {spec} must be a JSON Schema of an object with `properties`")
        name = str(raw.get("title") or path.stem.split(".")[0])
        model = model_from_json_schema(raw, name)
    else:
        module, sep, attr = spec.partition(":")
        if not sep or not module or not attr:
            raise BadInput(f"--schema wants a pydantic model as module:Class or a .json JSON Schema file, "
                           f"got {spec!r}")
        try:
            model = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise BadInput(f"--schema: cannot import {spec}: {exc}") from None
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise BadInput(f"--schema: {spec} is not a pydantic model class")
        raw, name = model.model_json_schema(), model.__name__
    schema = OutputSchema(re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer", strict_schema(raw), model)
    clash = sorted(set(schema.columns()) & set(reserved))
    if clash:
        raise BadInput(f"--schema: field {clash[0]!r} would overwrite the output column of the same name; rename it")
    return schema


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The strict form of a JSON Schema: closed objects, all properties required, optional ones nullable."""
    out = copy.deepcopy(schema)

    def fix(node: Any) -> None:
        if not isinstance(node, dict):
            return
        node.pop("default", None)  # strict mode rejects defaults; pydantic still applies them
        props = node.get("properties")
        if node.get("type") == "object" or isinstance(props, dict):
            props = node.setdefault("properties", {})
            required = set(node.get("required", []))
            for key, sub in props.items():
                if key not in required and isinstance(sub, dict) and not _nullable(sub):
                    props[key] = {"anyOf": [sub, {"type": "null"}]}
            node["required"] = list(props)
            node["additionalProperties"] = False
            for sub in props.values():
                fix(sub)
        for key in ("items", "additionalProperties"):
            fix(node.get(key))
        for key in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(key) or []:
                fix(sub)
        for sub in (node.get("$defs") or {}).values():
            fix(sub)

    fix(out)
    return out


def model_from_json_schema(schema: dict[str, Any], name: str) -> type[BaseModel]:
    """A pydantic model for a JSON Schema object: typed top-level fields, nested parts checked by type."""
    required = set(schema.get("required", []))
    fields: dict[str, Any] = {}
    for key, spec in schema.get("properties", {}).items():
        kind = _python_type(spec, schema)
        fields[key] = (kind, ...) if key in required else (kind | None, None)
    closed = schema.get("additionalProperties") is False
    config = ConfigDict(extra="forbid" if closed else "ignore")
    return create_model(re.sub(r"\W", "_", name) or "Answer", __config__=config, **fields)


def _resolve(spec: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = spec.get("$ref", "")
    if ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {})
        return target
    return spec


def _python_type(spec: dict[str, Any], root: dict[str, Any]) -> Any:
    spec = _resolve(spec, root)
    if "enum" in spec:
        return Literal[tuple(spec["enum"])]
    kind = spec.get("type")
    if isinstance(kind, list):
        types = [_python_type({**spec, "type": k}, root) for k in kind]
        out = types[0]
        for t in types[1:]:
            out = out | t
        return out
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    if kind == "null":
        return type(None)
    if kind == "array":
        return list[_python_type(spec.get("items", {}), root)] if spec.get("items") else list[Any]
    if kind == "object" and spec.get("properties"):
        return model_from_json_schema(spec, str(spec.get("title") or "Nested"))
    if kind == "object":
        return dict[str, Any]
    for union in ("anyOf", "oneOf"):
        if spec.get(union):
            types = [_python_type(s, root) for s in spec[union]]
            out = types[0]
            for t in types[1:]:
                out = out | t
            return out
    return Any


def _nullable(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(s.get("type") == "null" for s in spec.get("anyOf", []) if isinstance(s, dict))


def _column_type(spec: dict[str, Any], root: dict[str, Any]) -> str:
    spec = _resolve(spec, root)
    options = [s for s in spec.get("anyOf", []) if isinstance(s, dict) and s.get("type") != "null"]
    if len(options) == 1:  # Optional[X]: the column has X's type and nulls
        return _column_type(options[0], root)
    kind = spec.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if "enum" in spec and all(isinstance(v, str) for v in spec["enum"]):
        return "str"
    if kind in _COLUMN:
        return _COLUMN[kind]
    if kind == "array" and _resolve(spec.get("items", {}), root).get("type") == "string":
        return "list[str]"
    return "json"
