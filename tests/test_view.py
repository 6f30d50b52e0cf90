"""`factory view` over HTTP: pages, paging and filters, security (token, host, CSRF, secrets), bad requests,
runs in progress and checkpoints. The real server in a subprocess, talked to with a real HTTP client."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse

import polars as pl
import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import StageInfo, Store
from tests.helpers import REPO
from tests.view_support import SECRET, ViewServer, build_store


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("view-home")
    build_store(home)
    return home


@pytest.fixture(scope="module")
def server(home):
    with ViewServer(home) as s:
        yield s


def test_pages_answer_and_show_the_store(server, home):
    store = Store(home)
    gen, judged = store.latest("gen"), store.latest("gen-judged")
    status, headers, body = server.get("/")
    assert status == 200 and "gen-judged" in body and judged.version in body
    assert "script-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in body
    status, _, body = server.get(f"/v/gen/{gen.version}")
    assert status == 200 and "120 matching rows" in body and "page 1 of 3" in body
    status, _, body = server.get(f"/v/gen/{gen.version}?page=3")
    assert status == 200 and ">119</a>" in body and ">99</a>" not in body
    status, _, body = server.get(f"/v/gen-judged/{judged.version}/lineage")
    assert status == 200 and all(f"/v/{n}/{v.version}" in body for n, v in
                                 (("gen", gen), ("seed", store.latest("seed")), ("gen-judged", judged)))
    status, _, body = server.get(f"/diff?a=gen&b=gen-judged@{judged.version[:6]}")
    assert status == 200 and re.search(r'id="removed">48<', body) and re.search(r'id="added">0<', body)
    status, _, body = server.get(f"/v/gen/{gen.version}/charts")
    assert status == 200 and body.count("<svg") >= 3 and "judge_score histogram (n=120)" in body


def test_filters_and_search_select_the_right_rows(server, home):
    gen = Store(home).latest("gen")
    _, _, body = server.get(f"/v/gen/{gen.version}?score=judge_score&lo=9&hi=10")
    shown = [int(i) for i in re.findall(r'data-row="(\d+)"', body)]
    assert "24 matching rows" in body and shown == [i for i in range(120) if i % 10 >= 8][:50]
    _, _, body = server.get(f"/v/gen/{gen.version}?q=" + urllib.parse.quote("EXPLAIN ITEM 42"))
    assert re.findall(r'data-row="(\d+)"', body) == ["42"]
    _, _, body = server.get(f"/v/gen/{gen.version}?col=id&val=r7")
    assert re.findall(r'data-row="(\d+)"', body) == ["7", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79"]


def test_row_page_renders_chat_and_escapes_content(server, home):
    gen = Store(home).latest("gen")
    status, _, body = server.get(f"/v/gen/{gen.version}/row/3")
    assert status == 200 and 'class="turn role-assistant"' in body and 'class="turn role-system"' in body
    assert "<script>window.__pwned" not in body and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body
    assert "<img src=x" not in body
    _, _, body = server.get(f"/v/gen/{gen.version}/row/4")
    assert '<pre class="code" data-lang="python"><code>print(4)' in body


def test_secrets_are_never_shown(server, home):
    gen = Store(home).latest("gen")
    for path in ("/", f"/v/gen/{gen.version}", f"/v/gen/{gen.version}/lineage", f"/v/gen/{gen.version}/charts"):
        assert SECRET not in server.get(path)[2]


def test_a_key_echoed_into_a_row_is_masked(tmp_path):
    key = "hf_rowLeakedTokenValue123"
    store = Store(tmp_path)
    with store.writer("errs", stage=StageInfo(kind="scheme", name="lamini", version="1"), config={}) as w:
        w.write([{"instruction": "q", "error": f"401 from server: Authorization: Bearer {key}"}])
        v = w.commit()
    with ViewServer(tmp_path, env={"HF_TOKEN": key}) as s:
        for path in (f"/v/errs/{v.version}", f"/v/errs/{v.version}/row/0", f"/v/errs/{v.version}?q=bearer"):
            status, _, body = s.get(path)
            assert status == 200 and key not in body and "Bearer ***" in body


@pytest.mark.parametrize("path", [
    "/v/gen/zzz", "/v/..%2F..%2Fetc/abc", "/v/.hidden/abc", "/d/a%2Fb", "/v/gen/abc?page=0", "/v/gen/abc?page=-1",
    "/v/nope/abc", "/d/nope", "/nope", "/checkpoints/7", "/checkpoints/x", "/diff", "/diff?a=gen&b=/etc/passwd",
    "/diff?a=gen@xyz&b=gen", "/static/../app.py", "/v/gen/LATEST/row/0",
])
def test_bad_requests_answer_4xx(server, path):
    status, _, body = server.get(path)
    assert 400 <= status < 500, (path, status)
    assert "Traceback" not in body


def test_bad_parameters_on_a_real_version_answer_4xx(server, home):
    base = f"/v/gen/{Store(home).latest('gen').version}"
    for query in ("?page=abc", "?page=%C2%B2", "?page=99999999999", "?col=nope&val=1", "?score=id&lo=1",
                  "?score=judge_score&lo=nan", "?score=judge_score&hi=1e999", "/row/120", "/row/-1", "/row/%C2%B2",
                  "/review"):
        status, _, body = server.get(base + query)
        assert 400 <= status < 500, (query, status)
    assert server.get(base + "?page=40")[0] == 200  # past the end: an empty page, not an error


def test_non_loopback_host_without_token_is_refused(home):
    r = CliRunner().invoke(cli, ["--home", str(home), "view", "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 2 and "not a loopback address" in r.output and "--token" in r.output


def test_token_is_required_and_compared(home):
    with ViewServer(home, "--token", "auto", host="0.0.0.0") as s:
        token = re.search(r"\?token=(\S+)", s.banner).group(1)
        assert s.get("/")[0] == 401
        assert s.get("/", {"Authorization": "Bearer wrong-token-123"})[0] == 401
        assert s.get("/?token=wrong-token-123")[0] == 401
        assert s.get("/", {"Authorization": f"Bearer {token}"})[0] == 200
        status, headers, _ = s.get(f"/d/gen?token={token}")
        assert status == 303 and headers["location"] == "/d/gen" and token not in headers["set-cookie"]
        cookie = headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        assert s.get("/d/gen", {"Cookie": cookie})[0] == 200
        assert s.get("/d/gen", {"Cookie": cookie[:-2] + "00"})[0] == 401


def test_loopback_rejects_foreign_host_headers(server):
    assert server.get("/", {"Host": "evil.example:8321"})[0] == 400  # DNS rebinding
    assert server.get("/", {"Host": f"localhost:{server.port}"})[0] == 200


def test_review_needs_the_flag_and_a_csrf_token(home):
    judged = Store(home).latest("gen-judged")
    form = urllib.parse.urlencode({"drop": ["0", "1"]}, doseq=True).encode()
    with ViewServer(home) as s:  # read-only
        assert s.get(f"/v/gen-judged/{judged.version}/review")[0] == 403
    with ViewServer(home, "--review") as s:
        path = f"/v/gen-judged/{judged.version}/review"
        status, _, page = s.get(path)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        assert s.get(path, data=form)[0] == 403
        good = form + b"&csrf=" + csrf.encode()
        assert s.get(path, {"Origin": "http://evil.example"}, data=good)[0] == 403
        assert s.get(path, data=good + b"&drop=9999")[0] == 400
        assert Store(home).versions("gen-judged-reviewed") == []
        status, headers, _ = s.get(path, data=good)
        assert status == 303
    out = Store(home).latest("gen-judged-reviewed")
    assert headers["location"] == f"/v/gen-judged-reviewed/{out.version}?saved=1"
    assert out.manifest.rows == judged.manifest.rows - 2 and out.manifest.stage.name == "human-review"
    assert out.manifest.config["dropped"] == [0, 1] and out.manifest.inputs[0].version == judged.version
    assert Store(home).get("gen-judged", judged.version).manifest == judged.manifest  # untouched


def test_review_edit_rewrites_response_and_messages(tmp_path):
    build_store(tmp_path)
    store = Store(tmp_path)
    gen = store.latest("gen")
    with ViewServer(tmp_path, "--review", "--reviewer", "alice") as s:
        path = f"/v/gen/{gen.version}/review"
        csrf = re.search(r'name="csrf" value="([^"]+)"', s.get(path)[2]).group(1)
        old = gen.read()["response"][5]
        data = urllib.parse.urlencode({"csrf": csrf, "edit-5": "Better answer.\r\nTwo lines.", "edit-6":
                                       gen.read()["response"][6].replace("\n", "\r\n"), "out": "gen-fixed"})
        assert s.get(path, data=data.encode())[0] == 303
    out = Store(tmp_path).latest("gen-fixed").read()
    assert out.height == 120 and out["response"][5] == "Better answer.\nTwo lines." != old
    assert out["messages"][5].to_list()[-1] == {"role": "assistant", "content": "Better answer.\nTwo lines."}
    cfg = Store(tmp_path).latest("gen-fixed").manifest.config
    assert cfg["reviewer"] == "alice" and [e["row"] for e in cfg["edited"]] == [5]  # row 6 came back unchanged


def test_runs_show_writes_in_progress_and_llm_answers(tmp_path):
    from factory.llm.cache import ResponseCache
    from factory.llm.types import Completion

    store = Store(tmp_path)
    cache = ResponseCache(tmp_path / "cache" / "llm.sqlite")
    cache.put_many([(f"k{i}", Completion(texts=["x"], prompt_tokens=10, completion_tokens=5, cost_usd=0.01))
                    for i in range(7)])
    w = store.writer("building", stage=StageInfo(kind="scheme", name="lamini", version="1"), config={},
                     shard_bytes=1)
    w.write([{"instruction": f"q{i}", "response": "<b>r</b>"} for i in range(30)])
    with ViewServer(tmp_path) as s:
        snap = json.loads(s.get("/api/runs")[2])
        assert [(x["name"], x["version"], x["rows"], x["alive"]) for x in snap["writes"]] == [
            ("building", w.version, 30, True)]
        assert snap["llm"]["recent"]["answers"] == 7 and snap["llm"]["recent"]["usd"] == pytest.approx(0.07)
        status, _, body = s.get("/runs")
        assert status == 200 and "&lt;b&gt;r&lt;/b&gt;" in body and w.version in body
        w.commit()
        assert json.loads(s.get("/api/runs")[2])["writes"] == []


def test_checkpoints_show_lineage_metrics_and_loss_curve(tmp_path, home):
    ckpt = tmp_path / "ckpts" / "sft-1"
    ckpt.mkdir(parents=True)
    gen = Store(home).latest("gen")
    (ckpt / "factory.json").write_text(json.dumps({
        "kind": "checkpoint", "method": "sft", "base_model": "tiny", "adapter": True,
        "datasets": [{"name": "gen", "version": gen.version}], "config": {"hf_token": SECRET},
        "metrics": {"train_loss": 1.5}, "eval": {"mt-bench": {"score": 6.1}}, "created": "2026-12-01T00:00:00Z",
        "stages": [{"dataset": "gen", "steps": 3}], "prune": {"distances": [0.3, 0.2, 0.25, 0.4], "removed": [1, 2]}}))
    (ckpt / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "loss": 1.1},
        {"step": 3, "train_loss": 1.5}]}))
    broken = tmp_path / "ckpts" / "zz-broken"  # read through CheckpointRecord: what it lacks is said, not a 500
    broken.mkdir()
    (broken / "factory.json").write_text(json.dumps({"kind": "checkpoint", "base_model": "tiny", "adapter": False}))
    with ViewServer(home, "--checkpoints", str(tmp_path / "ckpts")) as s:
        status, _, body = s.get("/checkpoints")
        assert status == 200 and 'href="/checkpoints/0">sft-1<' in body and 'href="/checkpoints/1">zz-broken<' in body
        status, _, bad = s.get("/checkpoints/1")
        assert status == 200 and "factory.json lacks method" in bad
        status, _, body = s.get("/checkpoints/0")
    assert status == 200 and "<polyline" in body and "mt-bench" in body and f"/v/gen/{gen.version}" in body
    points = re.search(r'<polyline class="line s0" points="([^"]+)"', body).group(1).split()
    assert len(points) == 3 and SECRET not in body
    assert 'aria-label="prune.distances"' in body and "prune.removed" not in body.split("factory.json</summary>")[0]


def test_help_stays_light():
    code = ("import sys; from click.testing import CliRunner; from factory.cli.main import cli; "
            "r = CliRunner().invoke(cli, ['view', '--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'polars', 'jinja2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("gap", [4096, 1])  # 1: every matching row is its own run
def test_paged_read_matches_a_full_read(home, monkeypatch, gap):
    from factory.view import rows

    monkeypatch.setattr(rows, "RUN_GAP", gap)
    gen = Store(home).latest("gen")
    full = gen.read().with_row_index("i")
    cases = [(rows.RowQuery(page=2, size=10, score="judge_score", lo=3, hi=4),
              pl.col("judge_score").is_between(3, 4)),
             (rows.RowQuery(page=1, size=7, q="ITEM 1"), pl.col("instruction").str.contains("item 1")),
             (rows.RowQuery(page=3, size=5, col="messages", val="be brief", score="judge_score", hi=2),
              pl.col("judge_score") <= 2)]
    for query, expr in cases:
        page = rows.read_page(gen, query)
        expected = full.filter(expr)
        start = (query.page - 1) * query.size
        assert page.total == expected.height and page.total > start
        assert page.indices == expected["i"].to_list()[start:start + query.size]
        assert page.rows == expected.drop("i").slice(start, query.size).to_dicts()
