"""`factory lineage REF`: the upstream chain of a dataset version, from the manifests."""

from __future__ import annotations

import json

import click

from factory.cli._fmt import short, when
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the chain as nested JSON.")
@pass_app
def lineage(app: App, ref: str, as_json: bool) -> None:
    """Show how a dataset version was made: its stages, configs and inputs, back to the sources."""
    store = app.store
    root = store.resolve(ref)

    def node(name: str, version: str) -> dict:  # no cycles: an id hashes its inputs' ids
        v = store.get(name, version)
        key = f"{name}@{version}"
        if v is None:
            return {"ref": key, "missing": True}
        m = v.manifest
        d = {"ref": key, "stage": m.stage.model_dump(), "config": m.config, "rows": m.rows,
             "created": m.created, "counters": m.counters, "source": getattr(m, "source", None),
             "model": _model(m)}
        if m.cost.requests:
            d["cost"] = m.cost.model_dump()
        d["inputs"] = [node(i.name, i.version) for i in m.inputs]
        return d

    tree = node(root.name, root.version)
    if as_json:
        click.echo(json.dumps(tree, indent=2, default=str))
        return
    for line in _render(tree, "", True, top=True):
        click.echo(line)


def _model(manifest) -> str | None:
    """The LLM an LLM step ran with (the manifest's `llm` record, else its config's `llm` spec)."""
    llm = getattr(manifest, "llm", None)
    if isinstance(llm, dict) and llm.get("spec"):
        return str(llm["spec"])
    spec = manifest.config.get("llm") if isinstance(manifest.config, dict) else None
    return str(spec) if spec else None


def _render(d: dict, prefix: str, last: bool, top: bool = False) -> list[str]:
    branch = "" if top else ("└─ " if last else "├─ ")
    inner = prefix if top else prefix + ("   " if last else "│  ")
    if d.get("missing"):
        return [f"{prefix}{branch}{d['ref']}  (missing: removed from the store)"]
    stage = d["stage"]
    lines = [f"{prefix}{branch}{d['ref']}  {stage['kind']}:{stage['name']}@{stage['version']}  "
             f"{d['rows']} rows  {when(d['created'])}"]
    if d.get("source"):
        lines.append(f"{inner}   source:   {d['source']}")
    if d.get("model"):
        lines.append(f"{inner}   model:    {d['model']}")
    if d["config"]:
        lines.append(f"{inner}   config:   {short(json.dumps(d['config'], default=str), 100)}")
    if d["counters"]:
        lines.append(f"{inner}   counters: " + ", ".join(f"{k}={v}" for k, v in d["counters"].items()))
    if d.get("cost"):
        c = d["cost"]
        lines.append(f"{inner}   cost:     {c['requests']} requests, ${c['usd']:.4f}")
    for i, child in enumerate(d["inputs"]):
        lines.extend(_render(child, inner, i == len(d["inputs"]) - 1))
    return lines
