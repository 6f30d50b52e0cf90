"""`factory schemes` and `factory judges`: list and inspect the installed plugins of each kind."""

from __future__ import annotations

import json
import re

import click

from factory.cli._fmt import short, table


def _plugin_group(kind: str, registry_path: str) -> click.Group:
    def registry():
        module, attr = registry_path.split(":")
        import importlib

        return getattr(importlib.import_module(module), attr)

    @click.group(name=f"{kind}s", help=f"List and inspect the installed {kind}s.")
    def group() -> None:
        pass

    @group.command("list", help=f"List the installed {kind}s with version and paper.")
    def list_() -> None:
        reg = registry()
        rows = [[cls.name, cls.version, short(getattr(cls.paper, "title", "") or "", 50),
                 re.split(r"[,:]", cls.small_model)[0] or "-", short((cls.__doc__ or "").strip().split("\n")[0], 60)]
                for cls in reg]
        if not rows:
            click.echo(f"no {kind}s installed")
            return
        click.echo(table(["name", "version", "paper", "small model", "what it does"], rows))

    @group.command(help=f"Show a {kind}'s paper, input and output columns, config fields and prompt templates.")
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
    def inspect(name: str, as_json: bool) -> None:
        cls = registry().get(name)
        d = cls.describe()
        if as_json:
            click.echo(json.dumps(d, indent=2, default=str))
            return
        click.echo(f"{d['name']} (version {d['version']}): {d['summary']}")
        if d["paper"]:
            click.echo(f"paper:   {d['paper']['title']} <{d['paper']['url']}>")
        click.echo("inputs:  " + (", ".join(f"{c} ({t})" for c, t in d["inputs"].items()) or "-"))
        click.echo("outputs: " + (", ".join(f"{c} ({t})" for c, t in d["outputs"].items()) or "-"))
        if d["config"]:
            click.echo(f"config{' (--set key=value)' if kind == 'scheme' else ''}:")
            click.echo(table(["  key", "type", "default", "help"],
                             [[f"  {k}", f["type"], short(json.dumps(f["default"], default=str), 40), f["help"]]
                              for k, f in d["config"].items()]))
        if d["prompts"]:
            click.echo(f"prompts: {', '.join(d['prompts'])}  (in {cls.prompts_dir()})")
        if d["small_model"]:
            click.echo(f"small local model: {d['small_model']}  (docs/small-models.md)")

    return group


schemes = _plugin_group("scheme", "factory.schemes:SCHEMES")
judges = _plugin_group("judge", "factory.judges:JUDGES")
