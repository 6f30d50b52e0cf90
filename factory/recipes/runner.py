"""`factory run`: a recipe's stages in order, each skipped when its finished output is still there.

A stage's fingerprint is a hash of its kind, its command line and the identities of what it reads (dataset
versions are content-addressed; a checkpoint is named by the fingerprint of the stage that trained it). The
run's state (`$FACTORY_HOME/runs/<recipe>/state.json`) maps each stage to its fingerprint and artefact, written
the moment a stage finishes: a rerun skips what is done, and an interrupted stage resumes inside its command
(LLM answers are cached as they arrive; training resumes from its last checkpoint).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

from factory.errors import BadInput, FactoryError
from factory.fsutil import atomic_write
from factory.hashing import short_digest
from factory.recipes.invoke import invoke
from factory.recipes.kinds import ARG, Kind, check_args, command_for, kind_of, option_names, to_args
from factory.recipes.spec import Recipe, StageSpec, substitute

# Options that change how a stage runs, not what it makes: left out of its fingerprint.
# `batch` among them: a batch run asks the same requests and makes the same version as an online one.
RUN_ONLY = {"budget", "concurrency", "rpm", "tpm", "max_retries", "timeout", "no_cache", "resume", "overwrite",
            "batch"}


@dataclass
class Outcome:
    """One stage's line in the summary and in run.json."""

    name: str
    kind: str
    status: str  # done | skipped | failed | planned | not run
    artefact: str | None = None
    fingerprint: str = ""
    seconds: float = 0.0
    usd: float = 0.0
    rows_in: int | None = None
    rows_out: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    command: str = ""
    estimate: dict[str, Any] | None = None


@dataclass
class Prepared:
    stage: StageSpec
    kind: Kind
    path: list[str]
    cmd: click.Command
    args: list[str]
    fingerprint: str
    options: dict[str, Any]
    resolved: dict[str, Any] = field(default_factory=dict)  # the options with variables filled in


class Runner:
    def __init__(self, root: click.Group, home: Path, recipe: Recipe, budget: float | None = None,
                 batch: bool = False):
        self.root, self.home, self.recipe, self.budget, self.batch = root, Path(home), recipe, budget, batch
        self.dir = self.home / "runs" / recipe.name
        self.state_file = self.dir / "state.json"
        self.state: dict[str, dict[str, Any]] = self._read_state()
        self.artefacts: dict[str, str] = {}
        self.identities: dict[str, str] = {}

    # -- the plan ---------------------------------------------------------------------------------------------
    def prepare(self, stage: StageSpec, placeholders: bool = False) -> Prepared:
        """The stage's command line with variables and upstream outputs filled in (or placeholders, to check)."""
        kind = kind_of(stage.kind, stage.name)
        lookup: dict[str, Any] = dict(self.recipe.vars)
        ids: dict[str, Any] = dict(self.recipe.vars)
        for s in self.recipe.stages:
            lookup[s.name] = f"<{s.name}>" if placeholders else self.artefacts.get(s.name, f"<{s.name}>")
            ids[s.name] = self.identities.get(s.name, s.name)
        options = stage.options
        path, cmd = command_for(self.root, kind, substitute(options, lookup), stage.name)
        if kind.select:
            options.pop(kind.select, None)
        names = option_names(cmd)
        if stage.inputs:
            target = next((p.name for p in cmd.params if isinstance(p, click.Argument)), None) \
                if kind.from_to == ARG else kind.from_to
            target = dict(kind.aliases).get(target, target)
            if target is None or target not in names:
                raise BadInput(f"stage {stage.name!r}: `from` means nothing to `factory {' '.join(path)}`")
            if target in options:
                raise BadInput(f"stage {stage.name!r}: give its input as `from` or `{target}`, not both")
            refs = [f"${{{n}}}" for n in stage.inputs]
            options[target] = refs if isinstance(stage.from_, list) else refs[0]
        if kind.produces == "dataset" and "name" in names and "name" not in options:
            options["name"] = stage.name
        if kind.out_option and kind.out_option in names and kind.out_option not in options:
            options[kind.out_option] = str(self.dir / stage.name)
        resolved = substitute(options, lookup)
        args = to_args(cmd, resolved, stage.name, kind)
        fingerprint = short_digest({"kind": stage.kind, "path": path,
                                    "options": substitute({k: v for k, v in options.items() if k not in RUN_ONLY},
                                                          ids)})
        return Prepared(stage, kind, path, cmd, args, fingerprint, options, resolved)

    def check(self) -> None:
        """Every stage's command line parses, before anything runs."""
        for stage in self.recipe.order():
            p = self.prepare(stage, placeholders=True)
            check_args(self.root, p.path, p.cmd, p.args, stage.name)

    def finished(self, p: Prepared) -> dict[str, Any] | None:
        entry = self.state.get(p.stage.name)
        if not entry or entry.get("fingerprint") != p.fingerprint or not self._exists(p.kind, entry["artefact"]):
            return None
        return entry

    # -- running ----------------------------------------------------------------------------------------------
    def span(self, start: str | None = None, until: str | None = None) -> tuple[int, int]:
        """The positions of --from and --until in the run order; unknown names, or --from after --until, are errors
        (a dry run checks them too, so it never shows a plan the real run would refuse)."""
        names = [s.name for s in self.recipe.order()]
        first = names.index(self.recipe.stage(start).name) if start else 0
        last = names.index(self.recipe.stage(until).name) if until else len(names) - 1
        if first > last:
            raise BadInput(f"--from {start} comes after --until {until} in recipe {self.recipe.name}: nothing to run")
        return first, last

    def run(self, start: str | None = None, until: str | None = None) -> list[Outcome]:
        self.check()
        order = self.recipe.order()
        first, last = self.span(start, until)
        outcomes: list[Outcome] = []
        spent = 0.0
        for i, stage in enumerate(order):
            p = self.prepare(stage)
            done = self.finished(p)
            if i < first or i > last:
                if done is not None:
                    self._remember(stage.name, done)
                    outcomes.append(self._outcome(p, "skipped", done))
                elif i < first:
                    raise BadInput(f"--from {start}: stage {stage.name!r} before it has not finished yet")
                else:
                    outcomes.append(Outcome(stage.name, stage.kind, "not run", fingerprint=p.fingerprint))
                continue
            if done is not None:
                self._remember(stage.name, done)
                outcomes.append(self._outcome(p, "skipped", done))
                click.echo(f"[{i + 1}/{len(order)}] {stage.name}: done before, skipped ({done['artefact']})", err=True)
                continue
            outcome = self._run_one(p, i, len(order), None if self.budget is None else self.budget - spent)
            outcomes.append(outcome)
            spent += outcome.usd
            if outcome.status == "failed":
                outcomes += [Outcome(s.name, s.kind, "not run") for s in order[i + 1:]]
                break
        self._write_run_json(outcomes)
        return outcomes

    def _batchable(self, p: Prepared) -> bool:
        """`factory run --batch` batches a stage whose paid LLMs (`Kind.llm_keys`: build's `llm`, judge's `with`,
        eval's `judge`; eval's model under test answers in-process when local) all have a batch API."""
        from factory.llm import has_batch_api

        def api(spec: Any) -> bool:
            try:
                return isinstance(spec, str) and has_batch_api(spec, self.home)
            except FactoryError:
                return False  # a checkpoint folder, not a provider spec

        specs = [p.resolved[key] for key in p.kind.llm_keys if p.resolved.get(key) is not None]
        return bool(specs) and all(api(spec) for spec in specs)

    def _run_one(self, p: Prepared, i: int, total: int, budget_left: float | None) -> Outcome:
        args = list(p.args)
        cmd_names = option_names(p.cmd)
        if budget_left is not None and "budget" in cmd_names and "budget" not in p.options:
            if budget_left <= 0:
                return Outcome(p.stage.name, p.stage.kind, "failed", fingerprint=p.fingerprint,
                               error=f"the run's --budget ${self.budget:g} is spent")
            args += ["--budget", f"{budget_left:.6f}"]
        if self.batch and "batch" in cmd_names and "batch" not in p.options and self._batchable(p):
            args.append("--batch")
        out = p.options.get(p.kind.out_option) if p.kind.out_option else None
        if out is not None:
            args += self._resume_flags(Path(out), cmd_names, p.options)
        shown = " ".join(["factory", *p.path, *args])
        click.echo(f"[{i + 1}/{total}] {p.stage.name}: {shown}", err=True)
        started = time.monotonic()
        result = invoke(self.root, ["--home", str(self.home), *p.path, *args])
        seconds = time.monotonic() - started
        if result.code != 0 or not result.artefact:
            error = result.error if result.code != 0 else "the command printed no output to chain"
            return Outcome(p.stage.name, p.stage.kind, "failed", fingerprint=p.fingerprint, seconds=seconds,
                           error=error, command=shown)
        entry = {"fingerprint": p.fingerprint, "artefact": result.artefact, "seconds": round(seconds, 2),
                 "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": shown,
                 **self._stats(p.kind, result.artefact)}
        if not self._exists(p.kind, result.artefact):
            return Outcome(p.stage.name, p.stage.kind, "failed", fingerprint=p.fingerprint, seconds=seconds,
                           error=f"its output {result.artefact!r} is not there", command=shown)
        if p.kind.produces == "dataset" and entry.get("rows_out") == 0 and not p.options.get("allow_empty"):
            return Outcome(p.stage.name, p.stage.kind, "failed", fingerprint=p.fingerprint, seconds=seconds,
                           error=f"{result.artefact} has no rows", command=shown)
        self.state[p.stage.name] = entry
        atomic_write(self.state_file, json.dumps(self.state, indent=2) + "\n")
        self._remember(p.stage.name, entry)
        return self._outcome(p, "done", entry)

    @staticmethod
    def _resume_flags(out: Path, cmd_names: dict[str, Any], options: dict[str, Any]) -> list[str]:
        """A stage killed mid-training resumes it; a finished output the state lost is replaced."""
        if options.get("resume") or options.get("overwrite"):
            return []
        partial = out.with_name(out.name + ".partial")
        if partial.is_dir() and "resume" in cmd_names:
            return ["--resume"]
        if out.is_dir() and any(out.iterdir()) and "overwrite" in cmd_names:
            return ["--overwrite"]
        return []

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _remember(self, name: str, entry: dict[str, Any]) -> None:
        self.artefacts[name] = entry["artefact"]
        self.identities[name] = f"{entry['artefact']}#{entry['fingerprint']}"

    def _outcome(self, p: Prepared, status: str, entry: dict[str, Any]) -> Outcome:
        return Outcome(p.stage.name, p.stage.kind, status, artefact=entry["artefact"], fingerprint=p.fingerprint,
                       seconds=entry.get("seconds", 0.0) if status == "done" else 0.0,
                       usd=entry.get("usd", 0.0) if status == "done" else 0.0, rows_in=entry.get("rows_in"),
                       rows_out=entry.get("rows_out"), counters=entry.get("counters", {}),
                       command=entry.get("command", ""))

    def _exists(self, kind: Kind, artefact: str) -> bool:
        if kind.produces == "path":
            return artefact.startswith(("http://", "https://")) or Path(artefact).exists()
        try:
            self._store().resolve(artefact)
            return True
        except FactoryError:
            return False

    def _stats(self, kind: Kind, artefact: str) -> dict[str, Any]:
        if kind.produces != "dataset":
            return {}
        m = self._store().resolve(artefact).manifest
        rows_in = 0
        for ref in m.inputs:
            try:
                rows_in += self._store().resolve(ref.ref()).manifest.rows
            except FactoryError:
                pass
        counters = {k: int(v) for k, v in m.counters.items() if isinstance(v, int | float)}
        return {"rows_out": m.rows, "rows_in": rows_in if m.inputs else None, "counters": counters,
                "usd": round(m.cost.usd, 6) if m.cost else 0.0}

    def _store(self):
        from factory.store import Store

        return Store(self.home)

    def _read_state(self) -> dict[str, dict[str, Any]]:
        try:
            state = json.loads(self.state_file.read_text())
            return state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write_run_json(self, outcomes: list[Outcome]) -> None:
        doc = {"recipe": self.recipe.name, "paper": self.recipe.paper, "vars": self.recipe.vars,
               "budget": self.budget, "usd": round(sum(o.usd for o in outcomes), 6),
               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "ok": all(o.status in ("done", "skipped", "not run") for o in outcomes),
               "stages": [asdict(o) for o in outcomes]}
        atomic_write(self.dir / "run.json", json.dumps(doc, indent=2, default=str) + "\n")
