"""Property-based fuzzing (hypothesis) of the places hostile input enters: the Hub server's name and path
validation (pure and over HTTP), the importer, the config loader and the judge verdict parser.

The property everywhere: any input ends in a result or in the project's own one-line error (`BadInput`,
`FactoryError`, `VerdictError`, an HTTP 4xx), never in a traceback; the work per input is bounded (each
example runs under hypothesis' deadline). Example counts stay small for a 2-core CI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factory.errors import FactoryError
from factory.hub import HubServer, rules
from factory.judges.parse import Scale, Verdict, VerdictError, parse_pair, parse_score

FAST = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=25, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
TOKEN = "tok-fuzz"
# Text that leans toward the dangerous: separators, dots, control characters, non-ASCII, long runs.
nasty = st.lists(
    st.sampled_from(list("a.-_/\\\x00\n\r\t %~:[]{}*?é\u202e0") + ["..", "../", ".git", "x" * 50]), max_size=20
).map("".join)
names = st.one_of(nasty, st.text(max_size=120))


@given(names)
@FAST
def test_valid_names_stay_inside_the_root(name: str) -> None:
    root = Path("/srv/hub/repos/model")
    if rules.valid_name(name):
        assert name.isascii() and name.isprintable() and "/" not in name and name not in (".", "..")
        assert (root / name / name).resolve().is_relative_to(root)
    if rules.valid_path(name):
        assert not any(part in ("", ".", "..") for part in name.split("/")) and "\x00" not in name
        assert (root / name).resolve().is_relative_to(root)
    rules.valid_ref_name(name)  # never raises
    if rules.valid_ref_name(name):
        assert ".." not in name and not any(ord(c) < 33 for c in name)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("fuzz") / "root", tokens={TOKEN: "fuzz"}, orgs={}) as server:
        requests.post(
            f"{server.url}/api/repos/create",
            json={"name": "target"},
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        yield server


def _call(hub: HubServer, method: str, path: str, **kwargs) -> requests.Response:
    answer = requests.request(
        method,
        hub.url + path,
        headers={"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})},
        timeout=10,
        **kwargs,
    )
    assert answer.status_code < 500, (method, path, answer.text[:200])
    return answer


@given(namespace=names, name=names, kind=st.sampled_from(["model", "dataset", "space", "x", None]))
@SLOW
def test_create_repo_with_any_names(hub: HubServer, namespace: str, name: str, kind: str | None) -> None:
    answer = _call(hub, "POST", "/api/repos/create", json={"name": name, "organization": namespace, "type": kind})
    if answer.status_code == 200:
        assert rules.valid_name(name) and rules.valid_name(namespace or "fuzz")  # "" means the caller's own
    root = Path(hub.storage.root).resolve()
    for repo_json in root.glob("repos/*/*/*/repo.json"):
        assert repo_json.resolve().is_relative_to(root)


@given(path=names, rev=st.one_of(st.just("main"), names), body=st.binary(max_size=200))
@SLOW
def test_reads_and_commits_with_any_paths(hub: HubServer, path: str, rev: str, body: bytes) -> None:
    from urllib.parse import quote

    q, r = quote(path, safe=""), quote(rev, safe="")
    _call(hub, "GET", f"/fuzz/target/resolve/{r}/{q}")
    _call(hub, "GET", f"/api/models/fuzz/target/tree/{r}/{q}")
    _call(hub, "POST", f"/api/models/fuzz/target/paths-info/{r}", data={"paths": [path]})
    line = {"key": "file", "value": {"path": path, "content": "eA==", "encoding": "base64"}}
    payload = json.dumps({"key": "header", "value": {"summary": "f"}}) + "\n" + json.dumps(line) + "\n"
    answer = _call(hub, "POST", "/api/models/fuzz/target/commit/main", data=payload.encode())
    assert answer.status_code == (200 if rules.valid_path(path) else 422)
    for endpoint in ("commit/main", "preupload/main", "paths-info/main"):
        _call(
            hub,
            "POST",
            f"/api/models/fuzz/target/{endpoint}",
            data=body,
            headers={"Content-Type": "application/json"},
        )


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@given(
    content=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(json_values, max_size=5).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
    ),
    ext=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt"]),
)
@SLOW
def test_importer_on_any_file(tmp_path_factory: pytest.TempPathFactory, content: bytes, ext: str) -> None:
    from factory.store.importer import import_dataset
    from factory.store.store import Store

    base = tmp_path_factory.mktemp("imp")
    source = base / f"data{ext}"
    source.write_bytes(content)
    store = Store(base / "home")
    store.ensure()
    try:
        version, _ = import_dataset(store, str(source), "fuzzed")
    except FactoryError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert version.manifest.rows == version.read().height


@given(
    content=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        json_values.map(lambda v: json.dumps(v).encode()),
    ),
    sets=st.lists(st.text(max_size=30), max_size=3),
)
@FAST
def test_config_loader_on_any_file(tmp_path_factory: pytest.TempPathFactory, content: bytes, sets: list[str]) -> None:
    from factory.config import build_config
    from factory.judges.rubric import JudgeConfig

    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_bytes(content)
    try:
        config = build_config(JudgeConfig, path, sets)
    except FactoryError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert isinstance(config, JudgeConfig)


SCALE = Scale(1, 10)
replies = st.one_of(
    st.text(max_size=400),
    st.lists(
        st.sampled_from(
            [
                "Score",
                "score:",
                "[[",
                "]]",
                "**",
                "/",
                "10",
                "7",
                "7.5",
                " ",
                "\n",
                "{",
                "}",
                '"score"',
                ":",
                "out of",
                "verdict:",
                "A",
                "B",
                "tie",
                "```json",
                "```",
                "[",
                "]",
            ]
        ),
        max_size=80,
    ).map("".join),
    st.integers(1, 3000).map(lambda n: "Score" + " " * n),
    st.integers(1, 3000).map(lambda n: "[" * n + "7" + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"score": ' * n),
)


@given(replies)
@settings(max_examples=150, deadline=1000)
def test_verdict_parser_on_any_reply(reply: str) -> None:
    try:
        verdict = parse_score(reply, SCALE)
    except VerdictError as exc:
        assert str(exc)
    else:
        assert isinstance(verdict, Verdict) and verdict.score in SCALE
    try:
        letter, _ = parse_pair(reply)
    except VerdictError as exc:
        assert str(exc)
    else:
        assert letter in ("A", "B", "C")


@pytest.mark.parametrize(
    "reply",
    [
        "Score" + " " * 1000,
        "score **" + " " * 1000 + "x",
        "Verdict:" + " " * 5000,
        "[" * 100_000,
        '{"score": ' + "[" * 100_000,
        "```{" * 20_000,
        '{"a": ' * 50_000,
    ],
)
def test_verdict_parser_known_slow_shapes(reply: str) -> None:
    with pytest.raises(VerdictError):
        parse_score(reply, SCALE)
    with pytest.raises(VerdictError):
        parse_pair(reply)


@pytest.mark.parametrize("reply", ["Score: 3 ... final [[7]]", "[[3]] and [[8]]"])
def test_ambiguous_scores_are_failures(reply: str) -> None:
    with pytest.raises(VerdictError, match="two different"):
        parse_score(reply, SCALE)


@pytest.mark.parametrize("reply", ["Verdict: A. On reflection [[B]]", "[[A]] ... [[B]]"])
def test_ambiguous_pairs_are_failures(reply: str) -> None:
    with pytest.raises(VerdictError, match="two different"):
        parse_pair(reply)
