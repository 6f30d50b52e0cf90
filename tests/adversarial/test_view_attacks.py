"""Attacks on `factory view`: hostile column types, diverged loss logs, repeated diff keys, review saves aimed at
other datasets, and a login redirect pointed off-site. The real server in a subprocess, over real HTTP."""

from __future__ import annotations

import html
import json
import re
import urllib.parse

import polars as pl
import pytest

from factory.store import StageInfo, Store
from tests.view_support import XSS, ViewServer, build_store

TOKEN = "view-token-1234"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("view-attack-home")
    build_store(home)
    store = Store(home)
    rows = [{"id": i, "nums": [1, i], "obj": {"a": XSS, "b": i}, "response": i, "constant": "same"}
            for i in range(30)]
    with store.writer("odd", stage=StageInfo(kind="import", name="import", version="1"), config={}) as w:
        w.write(pl.DataFrame(rows))
        w.commit()
    ckpt = home / "checkpoints" / "diverged"
    ckpt.mkdir(parents=True)
    (ckpt / "factory.json").write_text(json.dumps({"kind": "checkpoint", "method": "sft", "base_model": "tiny",
                                                   "adapter": False}))
    # what the Trainer writes when a run diverges: Python's json emits NaN and Infinity
    (ckpt / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": 1, "loss": 2.5}, {"step": 2, "loss": float("nan")}, {"step": 3, "loss": float("inf")},
        {"step": 4, "eval_loss": float("-inf")}]}))
    return home


@pytest.fixture(scope="module")
def server(home):
    with ViewServer(home, "--review") as s:
        yield s


@pytest.fixture(scope="module")
def token_server(home):
    with ViewServer(home, "--token", TOKEN) as s:
        yield s


def _error(body: str) -> str:
    found = re.search(r'<p class="error"[^>]*>(.*?)</p>', body, re.S)
    return html.unescape(found.group(1)) if found else ""


def _csrf(server, path: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', server.get(path)[2]).group(1)


def _post(server, path: str, fields: dict) -> tuple[int, dict, str]:
    return server.get(path, headers={"Content-Type": "application/x-www-form-urlencoded"},
                      data=urllib.parse.urlencode(fields, doseq=True).encode())


def test_a_diverged_loss_log_still_draws_the_checkpoint_page(server):
    status, _, body = server.get("/checkpoints/0")
    assert status == 200, _error(body)
    assert "<svg" in body and "<polyline" in body and "nan" not in body.split("<svg", 1)[1].split("</svg>")[0]


@pytest.mark.parametrize("col", ["nums", "obj"])
def test_the_column_filter_on_a_list_or_struct_column_is_a_400(server, home, col):
    odd = Store(home).latest("odd")
    status, _, body = server.get(f"/v/odd/{odd.version}?col={col}&val=1")
    assert status == 400 and "cannot be filtered" in _error(body)
    assert server.get(f"/v/odd/{odd.version}?col=id&val=7")[0] == 200  # a number column still filters


@pytest.mark.parametrize("key", ["nums", "obj"])
def test_a_diff_keyed_on_a_list_or_struct_column_is_a_400(server, key):
    status, _, body = server.get(f"/diff?a=odd&b=odd&key={key}")
    assert status == 400 and "cannot be a key" in _error(body)


def test_a_diff_key_that_repeats_is_refused_not_joined_n_squared(server, home):
    # keyed on a column holding one value, 30 rows would join into 900 pairs (a million rows: 10^12)
    status, _, body = server.get("/diff?a=odd&b=odd&key=constant")
    assert status == 400 and "values repeat" in _error(body)
    status, _, body = server.get("/diff?a=gen&b=gen&key=input")
    assert status == 400 and "values repeat" in _error(body)
    status, _, body = server.get("/diff?a=odd&b=odd&key=id")  # a unique key still diffs
    assert status == 200 and re.search(r'id="changed">0<', body)


def test_editing_a_response_that_is_not_text_is_a_400(server, home):
    odd = Store(home).latest("odd")
    path = f"/v/odd/{odd.version}/review"
    status, _, body = _post(server, path, {"csrf": _csrf(server, path), "edit-3": "new text", "out": "odd-edit"})
    assert status == 400 and "no text 'response' column" in _error(body)
    assert Store(home).versions("odd-edit") == []


def test_a_review_cannot_be_saved_into_a_dataset_other_stages_made(server, home):
    store = Store(home)
    gen, seed_before = store.latest("gen"), store.latest("seed")
    path = f"/v/gen/{gen.version}/review"
    for target in ("seed", "gen"):
        status, _, body = _post(server, path, {"csrf": _csrf(server, path), "drop": ["1"], "out": target})
        assert status == 400 and "not human reviews" in _error(body)
    assert store.latest("seed").version == seed_before.version and len(store.versions("seed")) == 1
    assert store.latest("gen").version == gen.version and len(store.versions("gen")) == 1
    # a dataset that holds only reviews takes another round
    for drop in ("1", "2"):
        status, headers, _ = _post(server, path, {"csrf": _csrf(server, path), "drop": [drop], "out": "gen-rev"})
        assert status == 303, headers
    assert len(store.versions("gen-rev")) == 2


@pytest.mark.parametrize("path", ["/%5Cevil.example/", "/%5C%5Cevil.example", "//%5Cevil.example",
                                  "/%0D%0ASet-Cookie:%20x=1", "/%09/evil.example"])
def test_the_token_login_redirect_stays_on_this_site(token_server, path):
    status, headers, _ = token_server.get(f"{path}?token={TOKEN}&page=2")
    location = headers["location"]
    assert status == 303 and location.startswith("/") and location[1:2] not in ("/", "\\"), location
    assert "\r" not in location and "\n" not in location and "\t" not in location
    assert location.endswith("?page=2") and TOKEN not in location


def test_a_diff_of_versions_too_large_to_hold_is_refused_before_reading(server, home):
    # a diff holds both versions in memory (90 MB of Parquet took 860 MB): a big version is refused from what
    # its manifest says, before a byte of it is read
    store = Store(home)
    with store.writer("huge", stage=StageInfo(kind="import", name="import", version="1"), config={}) as w:
        w.write(pl.DataFrame({"id": [1, 2]}))
        huge = w.commit()
    manifest = json.loads((huge.path / "manifest.json").read_text())
    manifest["files"][0]["bytes"] = 300 * 2**20
    (huge.path / "manifest.json").write_text(json.dumps(manifest))
    status, _, body = server.get("/diff?a=huge&b=odd")
    assert status == 400 and "factory datasets diff" in _error(body) and "MiB of Parquet" in _error(body)
    assert server.get("/diff?a=odd&b=gen")[0] == 200


def test_charts_of_a_big_version_read_only_its_first_rows(server, home):
    store = Store(home)
    n = 100_001
    with store.writer("tall", stage=StageInfo(kind="import", name="import", version="1"), config={}) as w:
        w.write(pl.DataFrame({"judge_score": [float(i % 10) for i in range(n)], "response": ["a b"] * n}))
        tall = w.commit()
    status, _, body = server.get(f"/v/tall/{tall.version}/charts")
    assert status == 200 and "judge_score histogram (n=100000)" in body
    assert "response length (words) (n=100000)" in body
    assert "Histograms of the first 100,000 of 100,001 rows." in body
    small = store.latest("gen")
    assert 'id="sampled"' not in server.get(f"/v/gen/{small.version}/charts")[2]
