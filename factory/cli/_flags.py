"""Click options generated from a pydantic config model: one place for each default, type and help text.

As TRL builds its flags from its config dataclasses, a command declares which model fields it exposes and
gets one option per field: the default, the type and the range come from the field (`ge`/`gt`/`le`/`lt`),
the help text from `Field(description=...)`.

    @model_options(JudgeConfig)                       # --min-score, --keep-all, --repeats, ...
    @model_options(RunSettings, flags={"budget_usd": "--budget"}, metavars={"budget_usd": "USD"})

How a field becomes an option:
  bool = False            --name           (a flag that sets True)
  bool = True             --no-name        (a flag that sets False)
  bool | None = None      --name/--no-name (unset: None)
  Literal["a", "b"]       --name [a|b]     (click.Choice)
  int / float + ge, gt..  click.IntRange / click.FloatRange
  list[X]                 --name X, repeatable
  X | None                the same as X, default None

The click parameter is named after the field, so `take(Model, kwargs)` collects a command's values, and
`given(Model, kwargs)` only those the user typed (to lay over `--config FILE` and `--set`). A field's
`json_schema_extra={"flag_help": ...}` replaces its description on the command line (e.g. for `--no-cache`).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal

import annotated_types
import click
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def model_options(model: type[BaseModel], only: Iterable[str] | None = None, exclude: Iterable[str] = (), *,
                  flags: dict[str, str] | None = None, metavars: dict[str, str] | None = None,
                  helps: dict[str, str] | None = None) -> Callable[[Callable], Callable]:
    """A decorator adding one click option per field of `model` (`only` these, in that order; minus `exclude`)."""
    names = list(only) if only is not None else [n for n in model.model_fields if n not in set(exclude)]
    options = [field_option(n, model.model_fields[n], flag=(flags or {}).get(n), metavar=(metavars or {}).get(n),
                            help=(helps or {}).get(n)) for n in names]

    def decorate(f: Callable) -> Callable:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


def field_option(name: str, field: FieldInfo, *, flag: str | None = None, metavar: str | None = None,
                 help: str | None = None) -> Callable[[Callable], Callable]:
    """The click option for one pydantic field."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    text = help or extra.get("flag_help") or field.description or None
    annotation, optional = _strip_optional(field.annotation)
    default = None if field.default is PydanticUndefined and field.default_factory is None \
        else field.get_default(call_default_factory=True)
    dashed = "--" + name.replace("_", "-")
    if annotation is bool:
        if optional or default is None:
            decls = [flag or f"{dashed}/--no-{dashed[2:]}"]
            return click.option(*decls, name, default=None, help=text)
        if default:
            return click.option(flag or f"--no-{dashed[2:]}", name, is_flag=True, flag_value=False, default=True,
                                help=text)
        return click.option(flag or dashed, name, is_flag=True, default=False, help=text)
    many = typing.get_origin(annotation) in (list, tuple, set)
    if many:
        (annotation,) = typing.get_args(annotation)[:1] or (str,)
    kind = click_type(annotation, field.metadata)
    shown = default not in (None, [], (), "") and not many
    return click.option(flag or dashed, name, type=kind, multiple=many, metavar=metavar,
                        default=() if many else default, show_default=shown, help=text)


def click_type(annotation: Any, metadata: list[Any]) -> click.ParamType:
    """click's type for a field's (non-optional) annotation and its constraints."""
    if typing.get_origin(annotation) is Literal:
        return click.Choice([str(v) for v in typing.get_args(annotation)])
    bounds: dict[str, Any] = {}
    for m in metadata:
        if isinstance(m, annotated_types.Ge):
            bounds.update(min=m.ge, min_open=False)
        elif isinstance(m, annotated_types.Gt):
            bounds.update(min=m.gt, min_open=True)
        elif isinstance(m, annotated_types.Le):
            bounds.update(max=m.le, max_open=False)
        elif isinstance(m, annotated_types.Lt):
            bounds.update(max=m.lt, max_open=True)
    if annotation is int:
        return click.IntRange(**bounds) if bounds else click.INT
    if annotation is float:
        return click.FloatRange(**bounds) if bounds else click.FLOAT  # the model refuses nan, naming its key
    return click.STRING


class _Rows(click.IntRange):
    """A count of rows: polars slices take an int64, so a larger --n would overflow rather than mean "all"."""

    def _describe_range(self) -> str:
        return "x>=1"  # the int64 ceiling is no advice in --help

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.INT.convert(value, param, ctx)
        if number > self.max:
            self.fail(f"{number} rows is more than any dataset holds (at most {self.max})", param, ctx)
        return super().convert(number, param, ctx)


ROWS = _Rows(min=1, max=2**63 - 1)


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and inf: both pass click's range checks (nan compares false to any bound),
    and a budget or fraction of nan is no setting."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def take(model: type[BaseModel], kw: dict[str, Any], names: Iterable[str] | None = None) -> dict[str, Any]:
    """Pop the values of `model`'s options out of a command's keyword arguments (lists for repeatable ones)."""
    out = {}
    for name in names if names is not None else model.model_fields:
        if name in kw:
            value = kw.pop(name)
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def given(values: dict[str, Any], ctx: click.Context | None = None) -> dict[str, Any]:
    """Those of `values` the user set on the command line (or through the environment), not click's defaults."""
    ctx = ctx or click.get_current_context()
    sources = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
    return {k: v for k, v in values.items() if ctx.get_parameter_source(k) in sources}


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None` / `Optional[X]`, else (annotation, False)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False
