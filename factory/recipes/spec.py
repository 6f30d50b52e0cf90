"""A recipe file: named stages, each one `factory` verb, chained by name; validated whole before anything runs.

    name: quickstart
    vars: {model: local, n: 8}                 # `${model}` in any value; `factory run R --set model=...`
    stages:
      - name: seeds                           # also the output dataset's name
        kind: import
        source: seeds:dolly
      - name: lamini
        kind: build
        from: seeds                           # an earlier stage: its output is this stage's input
        scheme: lamini
        llm: ${model}
        n: ${n}
        set: {per_request: 3}                 # the scheme's own options, checked against its config
      - name: sft
        kind: train
        method: sft                           # kinds with subcommands name them (train.method, eval.suite, ...)
        from: lamini                          # `from` may list several stages (sequential SFT)
        model: ${model}

Every other key is an option of the stage's command (`min_score` is `--min-score`); `${NAME}` names a
variable or another stage's output. `--set KEY=VALUE` sets a variable, `--set STAGE.KEY=VALUE` a stage's key.
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from factory.config import StrictModel, deep_merge, parse_sets, read_yaml, validation_message
from factory.errors import BadInput

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
REF = re.compile(r"\$\{([^}]*)\}")
STRUCTURE_KEYS = {"name", "kind", "from", "needs", "description"}


class StageSpec(StrictModel):
    """One stage: what the recipe says, before variables and references are filled in."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)

    name: str
    kind: str
    from_: str | list[str] | None = Field(default=None, alias="from")
    needs: list[str] = Field(default_factory=list, description="Stages that must run first (besides `from`).")
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("lower-case letters, digits, '.', '_' and '-', starting with a letter or digit")
        return v

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def inputs(self) -> list[str]:
        return [] if self.from_ is None else [self.from_] if isinstance(self.from_, str) else list(self.from_)


class Recipe(StrictModel):
    name: str
    description: str = ""
    paper: str = ""
    vars: dict[str, Any] = Field(default_factory=dict)
    stages: list[StageSpec] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("a recipe name is lower-case letters, digits, '.', '_' and '-'")
        return v

    @model_validator(mode="after")
    def _graph(self) -> Recipe:
        seen: set[str] = set()
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"two stages named {stage.name!r}")
            if stage.name in self.vars:
                raise ValueError(f"stage {stage.name!r} has the name of a variable")
            seen.add(stage.name)
        for stage in self.stages:
            for ref in stage.inputs + stage.needs:
                if ref not in seen:
                    raise ValueError(f"stage {stage.name!r}: no stage named {ref!r}{_hint(ref, seen)}")
            for ref in _references(stage.options):
                if ref not in seen and ref not in self.vars:
                    raise ValueError(f"stage {stage.name!r}: ${{{ref}}} names no stage or variable"
                                     f"{_hint(ref, seen | set(self.vars))}")
        self.order()  # cycles
        return self

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise BadInput(f"no stage named {name!r} in recipe {self.name}{_hint(name, [s.name for s in self.stages])}")

    def dependencies(self, stage: StageSpec) -> list[str]:
        names = {s.name for s in self.stages}
        refs = [r for r in _references(stage.options) if r in names]
        return list(dict.fromkeys(stage.inputs + stage.needs + refs))

    def order(self) -> list[StageSpec]:
        """The stages in an order that runs each after what it uses (the file's order where it is free)."""
        done: list[str] = []
        visiting: list[str] = []

        def visit(stage: StageSpec) -> None:
            if stage.name in done:
                return
            if stage.name in visiting:
                cycle = " -> ".join([*visiting[visiting.index(stage.name):], stage.name])
                raise ValueError(f"stages form a cycle: {cycle}")
            visiting.append(stage.name)
            for dep in self.dependencies(stage):
                visit(self.stage(dep))
            visiting.pop()
            done.append(stage.name)

        for stage in self.stages:
            visit(stage)
        return [self.stage(n) for n in done]


def _references(value: Any) -> list[str]:
    if isinstance(value, str):
        return [m.strip() for m in REF.findall(value)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def _hint(name: str, known: Any) -> str:
    close = get_close_matches(name, sorted(known), n=2)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def load_recipe(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, apply `--set` (variables, then `STAGE.KEY`), validate; every error is one line naming what is wrong."""
    data = read_yaml(path)
    overrides = parse_sets(sets)
    stages = data.get("stages") if isinstance(data.get("stages"), list) else []
    by_name = {s.get("name"): s for s in stages if isinstance(s, dict)}
    for key, value in overrides.items():
        if isinstance(value, dict) and key in by_name:
            # deep: `--set spin.set.max_steps=2` adds to the stage's `set:` mapping, not replaces it
            by_name[key].update(deep_merge(by_name[key], value))
        elif isinstance(value, dict):
            raise BadInput(f"--set {key}.…: no stage named {key!r}{_hint(key, [n for n in by_name if n])}")
        else:
            vars_ = data.setdefault("vars", {})
            if not isinstance(vars_, dict) or key not in vars_:
                raise BadInput(f"--set {key}: the recipe has no variable {key!r}"
                               f"{_hint(key, vars_ if isinstance(vars_, dict) else [])}; a stage's key is "
                               "--set STAGE.KEY=VALUE")
            vars_[key] = value
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise BadInput(_recipe_error(exc, data, Path(path))) from None


def _recipe_error(exc: ValidationError, data: dict[str, Any], path: Path) -> str:
    err = exc.errors()[0]
    loc = list(err["loc"])
    if len(loc) >= 2 and loc[0] == "stages" and isinstance(loc[1], int):
        stages = data.get("stages") or []
        entry = stages[loc[1]] if loc[1] < len(stages) else {}
        label = entry.get("name") if isinstance(entry, dict) and entry.get("name") else f"#{loc[1] + 1}"
        key = ".".join(str(p) for p in loc[2:]) or "(stage)"
        return f"{path}: stage {label!r}: {key}: {err['msg']}"
    if err["type"] == "value_error" and not loc:
        return f"{path}: {err['msg'].removeprefix('Value error, ')}"
    return validation_message(exc, str(path))


def substitute(value: Any, lookup: dict[str, Any]) -> Any:
    """Fill `${NAME}` from `lookup`; a value that is exactly `${NAME}` keeps the looked-up value's type."""
    if isinstance(value, str):
        whole = REF.fullmatch(value.strip())
        if whole:
            return lookup[whole.group(1).strip()]
        return REF.sub(lambda m: str(lookup[m.group(1).strip()]), value)
    if isinstance(value, dict):
        return {k: substitute(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, lookup) for v in value]
    return value
