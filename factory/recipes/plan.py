"""`factory run --dry-run`: what each stage would do and what its LLM calls could cost, offline and without keys.

Row counts flow from the seeds (counted) through the stages as upper bounds: a build makes at most `n` rows, a
judge or a filter keeps at most what it reads. An LLM stage's ceiling is its requests times the most completion
tokens each may take, plus prompts estimated from the stage's templates; local models cost nothing. Nothing is
sent, no model is loaded and no key is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.errors import FactoryError

PROMPT_OVERHEAD = 200  # tokens of row content a prompt carries besides its template (an estimate)
MT_BENCH_TURNS = 160  # 80 questions x 2 turns
ONLINE_ONLY = {"train"}  # kinds whose LLM calls (train spin's MT-Bench judge) have no --batch: full price


def count_rows(source: str, home: Path) -> int | None:
    """Rows in an import source (a shipped seed set, a local file, a stored version); None when unknown."""
    from factory.data import resolve_seed

    try:
        path = Path(resolve_seed(source))
    except FactoryError:
        return None
    if path.is_file():
        if path.suffix in (".jsonl", ".txt", ".ndjson"):
            with open(path, "rb") as fh:
                return sum(1 for line in fh if line.strip())
        try:
            import polars as pl

            return pl.scan_parquet(path).select(pl.len()).collect().item() if path.suffix == ".parquet" else None
        except Exception:
            return None
    try:
        from factory.store import Store

        return Store(home).resolve(source).manifest.rows
    except FactoryError:
        return None


def price(spec: str, home: Path) -> tuple[str, Any]:
    """(provider:model, Price | None) for an LLM spec, from the price table; no provider is created."""
    from factory.llm.pricing import PriceTable
    from factory.llm.spec import home_config, parse_spec

    config = home_config(home)
    provider, model = parse_spec(spec, config.aliases)
    return f"{provider}:{model}", PriceTable(config.prices).lookup(provider, model)


def estimate(kind: str, options: dict[str, Any], rows_in: int | None, home: Path) -> dict[str, Any] | None:
    """Requests, tokens and dollars at most, for a stage that calls an LLM; None for the others."""
    planner = _PLANNERS.get(kind)
    if planner is None:
        return None
    spec, requests, completion, template_tokens = planner(options, rows_in)
    if spec is None:
        return None
    model, p = price(str(spec), home)
    prompt = None if requests is None else requests * (template_tokens + PROMPT_OVERHEAD)
    usd = None if p is None or requests is None else p.cost(prompt, completion)
    batch = None if usd is None else usd if kind in ONLINE_ONLY else usd / 2
    return {"model": model, "requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
            "usd": usd, "batch_usd": batch, "priced": p is not None}


def _sets(options: dict[str, Any]) -> dict[str, Any]:
    value = options.get("set") or {}
    return value if isinstance(value, dict) else {}


def _build(options: dict[str, Any], rows_in: int | None) -> tuple:
    from factory.config import build_config
    from factory.schemes import SCHEMES

    cls = SCHEMES.get(str(options.get("scheme")))
    sets = [f"{k}={v}" for k, v in _sets(options).items()]
    if options.get("seed") is not None:
        sets.append(f"seed={options['seed']}")
    stage = cls(build_config(cls.Config, options.get("config"), sets))
    n = options.get("n")
    jobs = stage.seeds_for(int(n)) if n is not None else rows_in
    calls, tokens = stage.budget_per_job()
    template = sum(len(t) for t in cls.prompt_templates().values()) // 4
    requests = None if jobs is None else int(jobs * calls)
    return options.get("llm", "local"), requests, None if jobs is None else int(jobs * tokens), template


def _judge(options: dict[str, Any], rows_in: int | None) -> tuple:
    from factory.judges import JUDGES

    cls = JUDGES.get(str(options.get("rubric", "quality")))
    per_row = int(options.get("repeats") or 1) * (2 if "pair" in cls.name else 1)
    max_tokens = int(options.get("max_tokens") or 1024)
    rows = rows_in if options.get("n") is None or rows_in is None else min(rows_in, int(options["n"]))
    template = sum(len(t) for t in cls.prompt_templates().values()) // 4
    requests = None if rows is None else rows * per_row
    return options.get("with"), requests, None if requests is None else requests * max_tokens, template


def _generate(options: dict[str, Any], rows_in: int | None) -> tuple:
    max_tokens = int(options.get("max_tokens") or 1024)
    return options.get("llm", "local"), rows_in, None if rows_in is None else rows_in * max_tokens, 0


def _eval(options: dict[str, Any], rows_in: int | None) -> tuple:
    if options.get("judge") is None:
        return None, None, None, 0
    turns = MT_BENCH_TURNS if options.get("n") is None else 2 * int(options["n"])
    return options["judge"], turns, turns * int(options.get("judge_max_tokens") or 1024), 400


def _train(options: dict[str, Any], rows_in: int | None) -> tuple:
    """`train spin` with `mt_bench_judge`: MT-Bench is judged on the SFT model and on every iterate."""
    if options.get("method") != "spin" or options.get("mt_bench_judge") is None:
        return None, None, None, 0
    iterations = options.get("iterations")
    if iterations is None:  # `train spin` refuses to run without it
        return options["mt_bench_judge"], None, None, 400
    models = 1 + (len(iterations) if isinstance(iterations, list) else int(iterations))
    turns = MT_BENCH_TURNS if options.get("mt_bench_n") is None else 2 * int(options["mt_bench_n"])
    return options["mt_bench_judge"], models * turns, models * turns * 1024, 400


_PLANNERS = {"build": _build, "judge": _judge, "generate": _generate, "eval": _eval, "train": _train}


def rows_after(kind: str, options: dict[str, Any], rows_in: int | None, home: Path) -> int | None:
    """The most rows a stage can hand on."""
    if kind == "import":
        return count_rows(str(options.get("source")), home)
    if kind == "build":
        n = options.get("n")
        return int(n) if n is not None else rows_in
    if kind in ("judge", "dedup", "filter", "generate", "convert"):
        return rows_in
    return None
