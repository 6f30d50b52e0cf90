"""What `factory run` prints: the summary table after a run, and the plan with cost ceilings for `--dry-run`."""

from __future__ import annotations

from typing import Any

from factory.recipes.plan import estimate, rows_after
from factory.recipes.runner import Outcome, Runner
from factory.recipes.spec import substitute


def _n(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _usd(value: float | None, priced: bool = True) -> str:
    if not priced or value is None:
        return "unknown"
    return f"${value:.4f}"


def summary(outcomes: list[Outcome]) -> str:
    from factory.cli._fmt import short, table

    rows = []
    for o in outcomes:
        c = o.counters
        kdf = "-" if not c else f"{c.get('kept', o.rows_out or 0)}/{c.get('dropped', 0)}/{c.get('failed', 0)}"
        time = "-" if o.status != "done" else f"{o.seconds:.1f}s"
        rows.append([o.name, o.kind, o.status, _n(o.rows_in), _n(o.rows_out), kdf,
                     _usd(o.usd) if o.status == "done" else "-", time,
                     short(o.artefact or o.error or "", 70)])
    total = sum(o.usd for o in outcomes)
    spent = sum(o.seconds for o in outcomes if o.status == "done")
    lines = [table(["stage", "kind", "status", "rows in", "rows out", "kept/dropped/failed", "$", "time",
                    "artefact"], rows), f"total: ${total:.4f}, {spent:.1f}s of stage time"]
    return "\n".join(lines)


def dry_run_plan(runner: Runner) -> str:
    """Validate every stage, then the plan: per stage, its command, rows at most, and an LLM cost ceiling."""
    from factory.cli._fmt import table

    runner.check()
    rows_out: dict[str, int | None] = {}
    lines, total, batch_total, unknown = [], 0.0, 0.0, False
    table_rows = []
    for stage in runner.recipe.order():
        p = runner.prepare(stage)
        done = runner.finished(p)
        if done is not None:
            runner._remember(stage.name, done)
        opts = substitute(stage.options, {**runner.recipe.vars, **{s.name: s.name for s in runner.recipe.stages}})
        if p.kind.select:
            opts.setdefault(p.kind.select, p.path[-1])
        ups = [rows_out.get(n) for n in stage.inputs]
        rows_in = None if not ups or any(u is None for u in ups) else sum(ups)
        rows_out[stage.name] = rows_after(stage.kind, opts, rows_in, runner.home)
        est = None if done is not None else estimate(stage.kind, opts, rows_in, runner.home)
        cost = "-"
        if est is not None:
            if est["usd"] is None:
                unknown = True
                cost = "unknown" if est["priced"] else f"unknown (no price for {est['model']})"
            else:
                total += est["usd"]
                batch_total += est["batch_usd"]
                cost = f"≤ ${est['usd']:.4f} (batch ≤ ${est['batch_usd']:.4f})"
        calls = "-" if est is None else f"{_n(est['requests'])} req to {est['model']}"
        table_rows.append([stage.name, stage.kind, "done, skip" if done else "to run", _n(rows_in),
                           _n(rows_out[stage.name]), calls, cost])
        lines.append(f"  {stage.name}: factory {' '.join(p.path)} {' '.join(p.args)}")
    head = f"recipe {runner.recipe.name}: {len(table_rows)} stages, all valid" + \
        (f" ({runner.recipe.paper})" if runner.recipe.paper else "")
    ceiling = f"cost ceiling: ≤ ${total:.4f} online, ≤ ${batch_total:.4f} with --batch" + \
        (" (plus stages without a known price)" if unknown else "")
    return "\n".join([head, table(["stage", "kind", "status", "rows in", "rows out (at most)", "LLM calls",
                                   "cost"], table_rows), ceiling, "commands:", *lines])
