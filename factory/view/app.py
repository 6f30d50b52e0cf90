"""The viewer's ASGI app: Starlette routes over the store, pages rendered by Jinja with autoescape on.

`create_app(store, ...)` wires the routes, the static files shipped in this package and the error pages:
a bad name, version, column or page number answers 400, something well-formed but absent 404, a refused
write 403; none of them shows a traceback.
"""

from __future__ import annotations

import getpass
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from factory.errors import BadInput, FactoryError
from factory.secrets import redact, scrub
from factory.store import Store
from factory.view import charts, checkpoints, insight, review, rows, runs
from factory.view.security import Guard, check_origin

HERE = Path(__file__).parent
MAX_FORM = 8 * 1024 * 1024


@dataclass
class Settings:
    review: bool = False
    reviewer: str = field(default_factory=lambda: _user())
    checkpoint_roots: list[Path] = field(default_factory=list)
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "reviewer"


def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined
    from markupsafe import Markup

    def finalize(value: Any) -> Any:
        # rows can hold what a provider echoed back (an error quoting a header): mask known keys and tokens in
        # everything a page prints; Markup (the server's own SVG) is left alone
        return scrub(value) if isinstance(value, str) and not isinstance(value, Markup) else value

    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, finalize=finalize)
    env.filters.update(cell=rows.cell, pretty=rows.pretty, segments=rows.segments, urlencode_params=urlencode)
    env.tests["chat"] = rows.is_chat
    return env


def create_app(store: Store, settings: Settings | None = None, token: str | None = None,
               loopback_only: bool = True) -> Any:
    settings = settings or Settings()
    env = _env()

    def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(request=request, settings=settings, **context)
        return HTMLResponse(html, status_code=status)

    # -- pages -------------------------------------------------------------------------------------
    async def datasets(request: Request) -> Response:
        return page(request, "datasets.jinja", items=insight.summaries(store))

    async def dataset(request: Request) -> Response:
        versions = store.versions(request.path_params["name"])
        if not versions:
            raise insight.NotFound(f"unknown dataset {request.path_params['name']!r}")
        return page(request, "dataset.jinja", name=versions[0].name, versions=list(reversed(versions)))

    def _version(request: Request):
        return insight.get_version(store, request.path_params["name"], request.path_params["version"])

    async def version(request: Request) -> Response:
        v = _version(request)
        schema = v.scan().collect_schema()
        query = rows.parse_query(request.query_params, schema)
        result = rows.read_page(v, query)
        return page(request, "version.jinja", v=v, manifest=insight.safe_manifest(v), schema=schema, query=query,
                    result=result, siblings=[s for s in store.versions(v.name) if s.version != v.version],
                    score_columns=insight.score_columns(schema), reviewing=False)

    async def row(request: Request) -> Response:
        v = _version(request)
        raw = request.path_params["index"]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
            raise BadInput(f"row {raw[:20]!r} is not a row number")
        return page(request, "row.jinja", v=v, index=int(raw), row=rows.read_row(v, int(raw)))

    async def lineage(request: Request) -> Response:
        v = _version(request)
        return page(request, "lineage.jinja", v=v, tree=insight.lineage(store, v), dependents=store.dependents(v))

    async def chart(request: Request) -> Response:
        v = _version(request)
        data = insight.chart_data(store, v)
        figures = [charts.histogram(f"{c} histogram", vals) for c, vals in data["scores"].items()]
        figures += [charts.histogram(f"{c} length (words)", vals) for c, vals in data["lengths"].items()]
        stages = data["stages"]
        labels = [s["name"] for s in stages]
        keys = sorted({k for s in stages for k in s["counters"] if k in ("kept", "dropped", "failed")})
        if keys:
            figures.append(charts.bars("kept / dropped / failed per stage", labels,
                                       [(k, [s["counters"].get(k, 0) for s in stages]) for k in keys]))
        if any(s["cost"]["requests"] for s in stages):
            figures.append(charts.bars("tokens per stage", labels, [
                ("prompt", [s["cost"]["prompt_tokens"] for s in stages]),
                ("completion", [s["cost"]["completion_tokens"] for s in stages])]))
            figures.append(charts.bars("$ per stage", labels, [("usd", [s["cost"]["usd"] for s in stages])]))
        return page(request, "charts.jinja", v=v, figures=figures, errors=data["errors"], stages=stages,
                    sampled=data["sampled"])

    async def diff(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        if not a or not b:
            raise BadInput("diff needs two versions: /diff?a=NAME@VERSION&b=NAME@VERSION")
        old, new = insight.get_ref(store, a), insight.get_ref(store, b)
        key = request.query_params.get("key") or None
        return page(request, "diff.jinja", old=old, new=new, d=insight.diff(old, new, key))

    async def review_page(request: Request) -> Response:
        if not settings.review:
            raise PermissionError("review is off: start the viewer with `factory view --review`")
        v = _version(request)
        if request.method == "POST":
            form = await _form(request)
            check_origin(request.headers, settings.csrf, (form.get("csrf") or [""])[0])
            decisions = review.parse_decisions(form, v.manifest.rows, settings.reviewer)
            out = (form.get("out") or [""])[0].strip() or f"{v.name}-reviewed"
            saved = review.save(store, v, decisions, out)
            return RedirectResponse(f"/v/{saved.name}/{saved.version}?saved=1", status_code=303)
        schema = v.scan().collect_schema()
        query = rows.parse_query(request.query_params, schema)
        return page(request, "version.jinja", v=v, manifest=insight.safe_manifest(v), schema=schema, query=query,
                    result=rows.read_page(v, query), siblings=[], score_columns=insight.score_columns(schema),
                    reviewing=True)

    async def runs_page(request: Request) -> Response:
        return page(request, "runs.jinja", snap=runs.snapshot(store))

    async def runs_api(request: Request) -> Response:
        return JSONResponse(redact(runs.snapshot(store)))

    def _checkpoints() -> list[Path]:
        return checkpoints.discover([*settings.checkpoint_roots, store.home / "checkpoints"])

    async def checkpoints_page(request: Request) -> Response:
        items = [(i, p, checkpoints.read_meta(p)) for i, p in enumerate(_checkpoints())]
        return page(request, "checkpoints.jinja", items=items)

    async def checkpoint_page(request: Request) -> Response:
        raw, found = request.path_params["n"], _checkpoints()
        if not raw.isascii() or not raw.isdigit() or int(raw) >= len(found):
            raise insight.NotFound(f"no checkpoint number {raw[:12]!r}")
        path = found[int(raw)]
        meta = checkpoints.read_meta(path)
        history = checkpoints.log_history(path, meta)
        curves = checkpoints.curves(history)
        figures = [charts.lines("loss", [c for c in curves if "loss" in c[0]])] if curves else []
        figures += [charts.lines(k, [(k, list(enumerate(v)))]) for k, v in checkpoints.number_series(meta).items()]
        return page(request, "checkpoint.jinja", n=int(raw), path=path, meta=meta, figures=figures,
                    tables=checkpoints.tables(meta), steps=len(history))

    # -- errors ------------------------------------------------------------------------------------
    def error(status: int):
        async def handler(request: Request, exc: Exception) -> Response:
            message = exc.detail if isinstance(exc, HTTPException) else str(exc).splitlines()[0] if str(exc) else ""
            code = exc.status_code if isinstance(exc, HTTPException) else status
            return page(request, "error.jinja", status=code, code=code, message=message or "error")
        return handler

    routes = [
        Route("/", datasets), Route("/d/{name}", dataset), Route("/v/{name}/{version}", version),
        Route("/v/{name}/{version}/row/{index}", row), Route("/v/{name}/{version}/lineage", lineage),
        Route("/v/{name}/{version}/charts", chart),
        Route("/v/{name}/{version}/review", review_page, methods=["GET", "POST"]),
        Route("/diff", diff), Route("/runs", runs_page), Route("/api/runs", runs_api),
        Route("/checkpoints", checkpoints_page), Route("/checkpoints/{n}", checkpoint_page),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers = {BadInput: error(400), PermissionError: error(403), LookupError: error(404),
                FactoryError: error(404), HTTPException: error(404), Exception: error(500)}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return Guard(app, token=token, loopback_only=loopback_only)


async def _form(request: Request) -> dict[str, list[str]]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise BadInput("review forms are sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise BadInput("form too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20_000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"unreadable form: {exc}") from None
