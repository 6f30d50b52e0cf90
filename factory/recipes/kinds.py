"""Stage kinds: which `factory` command each runs, and a stage's keys as that command's arguments.

A stage's keys are checked against the command's own options (the ones `factory VERB --help` lists, generated
from the stage configs), so a recipe can say whatever the command line can, and a typo is caught before the
run starts, naming the stage and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import click

from factory.errors import BadInput

ARG = "ARG"  # `from` goes to the command's first positional argument


@dataclass(frozen=True)
class Kind:
    verb: tuple[str, ...]
    select: str | None = None  # the key naming a subcommand (train.method, eval.suite, ...)
    from_to: str | None = ARG  # where `from` goes: the first argument, or an option's name
    produces: str = "dataset"  # "dataset" (a store ref on the last stdout line) or "path"
    llm_keys: tuple[str, ...] = ()  # options that name a model that may cost money (for --dry-run)
    out_option: str | None = None  # an output directory the runner chooses unless the stage does
    default_select: str | None = None
    aliases: tuple[tuple[str, str], ...] = ()  # recipe key -> the command's parameter name


KINDS: dict[str, Kind] = {
    "import": Kind(("datasets", "import"), from_to=None),
    "build": Kind(("build",), from_to="from", llm_keys=("llm",)),
    "generate": Kind(("generate",), llm_keys=("llm",)),
    "judge": Kind(("judge",), llm_keys=("with",)),
    "dedup": Kind(("dedup",)),
    "filter": Kind(("filter",)),
    "convert": Kind(("datasets", "convert"), from_to="ref", aliases=(("to", "stage"),)),
    "train": Kind(("train",), select="method", from_to="data", produces="path", out_option="out",
                  default_select="sft"),
    "prune": Kind(("prune",), from_to="model", produces="path", out_option="out"),
    "merge": Kind(("merge",), select="method", from_to=None, produces="path", out_option="out",
                  default_select="slerp"),
    "eval": Kind(("eval",), select="suite", from_to="model", produces="path", llm_keys=("judge",)),
    "publish": Kind(("publish",), produces="path"),
}


def kind_of(name: str, stage: str) -> Kind:
    if name not in KINDS:
        close = get_close_matches(name, KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BadInput(f"stage {stage!r}: unknown kind {name!r}{hint}; kinds: {', '.join(KINDS)}")
    return KINDS[name]


def command_for(root: click.Group, kind: Kind, options: dict[str, Any], stage: str) -> tuple[list[str], click.Command]:
    """The command path (e.g. ["train", "sft"]) and the click command a stage runs."""
    path = list(kind.verb)
    ctx = click.Context(root)
    cmd: click.Command | None = root
    for part in path:
        cmd = cmd.get_command(ctx, part) if isinstance(cmd, click.Group) else None
        if cmd is None:
            raise BadInput(f"stage {stage!r}: `factory {' '.join(path)}` is not available in this installation")
    if isinstance(cmd, click.Group):
        choice = options.get(kind.select, kind.default_select) if kind.select else None
        sub = cmd.get_command(ctx, str(choice)) if choice is not None else None
        if sub is None:
            known = ", ".join(cmd.list_commands(ctx))
            raise BadInput(f"stage {stage!r}: {kind.select}: {choice!r} is not one of {known}")
        path.append(str(choice))
        cmd = sub
    return path, cmd


def option_names(cmd: click.Command) -> dict[str, click.Parameter]:
    """Recipe key -> parameter: `--min-score` is `min_score`, `--from` is `from`, an argument is its name."""
    names: dict[str, click.Parameter] = {}
    for param in cmd.params:
        if isinstance(param, click.Argument):
            names[param.name] = param
            continue
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("--"):
                names[opt[2:].replace("-", "_")] = param
        names.setdefault(param.name, param)
    names.pop("help", None)
    return names


def to_args(cmd: click.Command, options: dict[str, Any], stage: str, kind: Kind | None = None) -> list[str]:
    """A stage's keys as the command's arguments; unknown keys are errors with the closest valid ones."""
    names = option_names(cmd)
    aliases = dict(kind.aliases) if kind else {}
    positional: dict[str, list[str]] = {}
    flags: list[str] = []
    for key, value in options.items():
        key = aliases.get(key, key)
        param = names.get(key)
        if param is None:
            close = get_close_matches(key, [*names, *aliases], n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise BadInput(f"stage {stage!r}: unknown key {key!r}{hint}")
        if value is None:
            continue
        if isinstance(param, click.Argument):
            positional[param.name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
            continue
        flag = _flag(param, key)
        if key == "set" and isinstance(value, dict):
            flags += [x for k, v in _flatten(value) for x in (flag, f"{k}={_scalar(v)}")]
        elif isinstance(param, click.Option) and param.is_flag:
            if value is True:
                flags.append(flag)
            elif value is False and param.secondary_opts:
                flags.append(param.secondary_opts[0])
        elif isinstance(value, list) and param.multiple:
            flags += [x for v in value for x in (flag, _scalar(v))]
        else:
            flags += [flag, _scalar(value)]
    ordered = [v for p in cmd.params if isinstance(p, click.Argument) for v in positional.get(p.name, [])]
    return ordered + flags


def _flag(param: click.Parameter, key: str) -> str:
    wanted = "--" + key.replace("_", "-")
    longs = [o for o in param.opts if o.startswith("--")]
    return wanted if wanted in param.opts else (longs[0] if longs else param.opts[0])


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out += _flatten(v, key + ".") if isinstance(v, dict) else [(key, v)]
    return out


def _scalar(value: Any) -> str:
    """A value as the command line reads it (YAML for --set values: lists and booleans survive)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        import json

        return json.dumps(value)
    return str(value)


def check_args(root: click.Group, path: list[str], cmd: click.Command, args: list[str], stage: str) -> None:
    """Parse the arguments as the command would (types, ranges, required options), without running it."""
    parent = click.Context(root, info_name="factory", obj=None)
    try:
        cmd.make_context(" ".join(path), list(args), parent=parent)
    except click.UsageError as exc:
        raise BadInput(f"stage {stage!r}: {exc.format_message()}") from None
    except click.exceptions.Exit:
        return
