"""Bounded work per request, and 4xx (never 500) for malformed bodies and parameters.

Each attack is followed by an ordinary request, so an attack that broke the server for everyone fails too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.adversarial.conftest import ALICE, BOB, Hub, inline, ndjson
from tests.helpers import REPO

BOMB = """---
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
---
"""
CARDS = {
    "bomb": BOMB,
    "recursive": "---\na: &a [*a]\n---\n",
    "deep": "---\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n",
    "dates": "---\nlicense: mit\ndate: 2024-01-01\ntags: [a, 1, null]\n---\n",
    "not-a-mapping": "---\n- a\n- b\n---\n",
    "bad-yaml": "---\na: [\n---\n",
}


def still_serving(hub: Hub) -> None:
    assert hub.http("GET", "/api/models/alice/pub-model").status_code == 200
    assert hub.http("GET", "/api/models").status_code == 200
    assert hub.http("GET", "/api/collections").status_code == 200


@pytest.mark.parametrize("card", list(CARDS))
def test_hostile_readme_front_matter(hub: Hub, card: str) -> None:
    repo = f"alice/card-{card}"
    hub.alice.create_repo(repo)
    readme = inline("README.md", CARDS[card].encode())
    assert hub.http("POST", f"/api/models/{repo}/commit/main", ALICE, data=ndjson(None, readme)).status_code == 200
    info = hub.http("GET", f"/api/models/{repo}")
    listing = hub.http("GET", "/api/models?full=1")
    assert info.status_code == listing.status_code == 200
    assert len(info.content) < 100_000 and len(listing.content) < 1_000_000
    if card == "dates":
        assert info.json()["cardData"]["date"] == "2024-01-01"
    else:
        assert "cardData" not in info.json()
    check = hub.http("POST", "/api/validate-yaml", json={"content": CARDS[card], "repoType": "model"})
    assert check.status_code == (200 if card == "dates" else 400)
    still_serving(hub)


DEEP = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.mark.parametrize(
    "method,path,kwargs",
    [
        ("POST", "/api/repos/create", {"data": DEEP}),
        ("POST", "/api/validate-yaml", {"data": DEEP}),
        ("POST", "/api/models/alice/pub-model/preupload/main", {"data": DEEP}),
        ("POST", "/api/models/alice/pub-model/commit/main", {"data": DEEP + b"\n"}),
        ("POST", "/alice/pub-model.git/info/lfs/objects/batch", {"data": DEEP}),
        (
            "POST",
            "/api/models/alice/pub-model/paths-info/main",
            {"data": DEEP, "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", "/api/collections", {"data": DEEP}),
    ],
)
def test_deeply_nested_json_is_a_400(hub: Hub, method: str, path: str, kwargs: dict) -> None:
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    answer = hub.http(method, path, ALICE, headers=headers, **kwargs)
    assert answer.status_code == 400
    still_serving(hub)


MALFORMED = [
    ("POST", "/api/models/alice/pub-model/preupload/main", {"json": {"files": "x"}}),
    ("POST", "/api/models/alice/pub-model/preupload/main", {"json": {"files": [1, None]}}),
    ("POST", "/api/models/alice/pub-model/preupload/main", {"json": {"files": [{"path": "a", "size": "big"}]}}),
    ("POST", "/api/models/alice/pub-model/preupload/main", {"json": {"files": [{"path": 5, "size": 1}]}}),
    ("POST", "/api/models/alice/pub-model/preupload/main", {"json": [1, 2]}),
    ("POST", "/api/models/alice/pub-model/preupload/main", {"data": b"\xff\xfe\x00"}),
    ("POST", "/alice/pub-model.git/info/lfs/objects/batch", {"json": {"operation": "upload", "objects": "x"}}),
    ("POST", "/alice/pub-model.git/info/lfs/objects/batch", {"json": {"operation": ["upload"]}}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": b"not json\n"}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": b'{"key": "header", "value": 5}\n'}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": b"[1]\n"}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": b'{"key": "header", "value": {"summary": 5}}\n'}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": ndjson({"summary": "s", "parentCommit": ["x"]})}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": ndjson(None, ("file", {"path": "a", "content": 7}))}),
    (
        "POST",
        "/api/models/alice/pub-model/commit/main",
        {"data": ndjson(None, ("file", {"path": "a", "content": "!!", "encoding": "base64"}))},
    ),
    (
        "POST",
        "/api/models/alice/pub-model/commit/main",
        {"data": ndjson(None, ("lfsFile", {"path": "a", "oid": 5, "size": "x"}))},
    ),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": ndjson(None, ("deletedFile", {"path": None}))}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": b"\xff\xff\n"}),
    ("POST", "/api/models/alice/pub-model/commit/main", {"data": b""}),
    ("POST", "/api/models/alice/pub-model/paths-info/main", {"json": {"paths": "a.txt"}}),
    ("POST", "/api/models/alice/pub-model/paths-info/main", {"json": {"paths": [1, {}]}}),
    (
        "POST",
        "/api/models/alice/pub-model/paths-info/main",
        {"data": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
    ),
    ("GET", "/api/models/alice/pub-model/tree/main?limit=abc", {}),
    ("GET", "/api/models/alice/pub-model/tree/main?limit=-1", {}),
    ("GET", "/api/models/alice/pub-model/tree/main?cursor=!!!", {}),
    ("GET", "/api/models/alice/pub-model/tree/main?cursor=aGVsbG8", {}),
    ("GET", "/api/models/alice/pub-model/commits/main?p=-1", {}),
    ("GET", "/api/models/alice/pub-model/commits/main?limit=0", {}),
    ("GET", "/api/models/alice/pub-model/commits/main?p=%C2%B2", {}),
    ("GET", "/api/models?limit=x", {}),
    ("POST", "/api/repos/create", {"json": {"name": ["x"]}}),
    ("POST", "/api/repos/create", {"json": {"name": "ok-name", "private": "yes"}}),
    ("POST", "/api/repos/create", {"json": {"name": "ok-name", "type": {"a": 1}}}),
    ("POST", "/api/models/alice/pub-model/tag/main", {"json": {"tag": 5}}),
    ("POST", "/api/models/alice/pub-model/tag/main", {"json": {"tag": "ok", "message": {"x": 1}}}),
    ("POST", "/api/models/alice/pub-model/branch/newb", {"json": {"startingPoint": 5}}),
    ("PUT", "/api/models/alice/pub-model/settings", {"json": {"private": "no"}}),
    ("PUT", "/api/models/alice/pub-model/settings", {"json": {"visibility": 3}}),
    ("POST", "/api/collections", {"json": {"title": 5}}),
    ("POST", "/api/collections", {"json": {"title": "t" * 10_000}}),
    ("POST", "/api/collections", {"json": {"title": "ok", "private": "x"}}),
]


@pytest.mark.parametrize(
    "method,path,kwargs", MALFORMED, ids=[f"{m[1].rsplit('/', 1)[-1]}-{i}" for i, m in enumerate(MALFORMED)]
)
def test_malformed_bodies_and_params_are_4xx(hub: Hub, method: str, path: str, kwargs: dict) -> None:
    head = hub.alice.model_info("alice/pub-model").sha
    answer = hub.http(method, path, ALICE, **kwargs)
    assert 400 <= answer.status_code < 500, answer.text[:200]
    assert hub.alice.model_info("alice/pub-model").sha == head
    still_serving(hub)


def test_range_headers(hub: Hub) -> None:
    for value in ("bytes=abc", "bytes=5-2", "bytes=999999999-", "items=0-1", "bytes=-", "bytes=0-1,3-4"):
        answer = hub.http("GET", "/alice/pub-model/resolve/main/a.txt", headers={"Range": value})
        assert answer.status_code in (200, 206, 416)


@pytest.fixture
def collection(hub: Hub) -> str:
    slug = hub.alice.create_collection("hostile patch", exists_ok=True).slug
    yield slug
    hub.alice.delete_collection(slug, missing_ok=True)


@pytest.mark.parametrize(
    "body",
    [
        {"title": 5},
        {"title": ["x"]},
        {"title": {"a": 1}},
        {"title": ""},
        {"description": 5},
        {"private": "yes"},
        {"position": "x"},
        {"position": True},
        {"theme": 1},
        {"title": "t" * 1000},
    ],
    ids=repr,
)
def test_collection_patch_types(hub: Hub, collection: str, body: dict) -> None:
    answer = hub.http("PATCH", f"/api/collections/{collection}", ALICE, json=body)
    assert answer.status_code == 400
    assert hub.alice.get_collection(collection).title == "hostile patch"
    still_serving(hub)


def test_collection_item_fields(hub: Hub, collection: str) -> None:
    for body in (
        {"item": "x"},
        {"item": {"id": 5, "type": "model"}},
        {"item": {"id": "a/b", "type": []}},
        {"item": {"id": "alice/pub-model", "type": "model"}, "note": {"x": 1}},
    ):
        assert hub.http("POST", f"/api/collections/{collection}/items", ALICE, json=body).status_code in (400, 404)
    item = hub.alice.add_collection_item(collection, "alice/pub-model", "model").items[0].item_object_id
    for body in ({"position": "x"}, {"position": -1}, {"note": 5}):
        assert hub.http("PATCH", f"/api/collections/{collection}/items/{item}", ALICE, json=body).status_code == 400
    still_serving(hub)


def test_public_collection_hides_private_items_from_others(hub: Hub, collection: str) -> None:
    hub.alice.add_collection_item(collection, "alice/pub-model", "model")
    hub.alice.add_collection_item(collection, "alice/priv-model", "model")
    hub.alice.add_collection_item(collection, "alice/priv-dataset", "dataset")
    owner = {i.item_id for i in hub.alice.get_collection(collection).items}
    assert owner == {"alice/pub-model", "alice/priv-model", "alice/priv-dataset"}
    for token in (BOB, None):
        seen = hub.http("GET", f"/api/collections/{collection}", token).json()
        assert [i["id"] for i in seen["items"]] == ["alice/pub-model"]
        listed = hub.http("GET", "/api/collections?owner=alice", token).json()
        assert all(i["id"] == "alice/pub-model" for c in listed for i in c["items"])
    # bob cannot add alice's private repo to his own collection: it reads as missing
    mine = hub.bob.create_collection("bob shelf", exists_ok=True).slug
    private = hub.http(
        "POST", f"/api/collections/{mine}/items", BOB, json={"item": {"id": "alice/priv-model", "type": "model"}}
    )
    missing = hub.http(
        "POST", f"/api/collections/{mine}/items", BOB, json={"item": {"id": "alice/nope", "type": "model"}}
    )
    assert (private.status_code, private.json()) == (missing.status_code, missing.json()) == (404, missing.json())


def test_body_size_is_bounded(hub: Hub) -> None:
    huge = 17 * 1024 * 1024
    # declared too large: refused from the header, unauthenticated or not
    for token in (None, ALICE):
        answer = hub.http("POST", "/api/validate-yaml", token, data=b"x" * huge)
        assert answer.status_code == 413

    # no declared length (chunked): refused once the limit is passed
    def chunks():
        for _ in range(huge // 65536 + 2):
            yield b" " * 65536

    answer = hub.http("POST", "/api/models/alice/pub-model/preupload/main", ALICE, data=chunks())
    assert answer.status_code == 413
    still_serving(hub)


@pytest.mark.parametrize("name", ["x\n", "x\x00", "x" * 97, "x" * 100_000], ids=repr)
def test_absurd_names_refused(hub: Hub, name: str) -> None:
    assert hub.http("POST", "/api/repos/create", ALICE, json={"name": name}).status_code == 400
    long_path = inline("d/" * 600 + "f.txt")
    assert (
        hub.http("POST", "/api/models/alice/pub-model/commit/main", ALICE, data=ndjson(None, long_path)).status_code
        == 422
    )


def test_non_loopback_host_warns_about_plain_http(tmp_path) -> None:
    env = {**os.environ, "FACTORY_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory", "hub", "serve", "--port", "0", "--host", "0.0.0.0"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        assert "plain HTTP" in line and "0.0.0.0" in line
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory", "hub", "serve", "--port", "0"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().startswith("Hub serving")
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert "plain HTTP" not in err


def test_folder_delete_and_tag_on_commit_oid(hub: Hub) -> None:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    api = hub.alice
    api.create_repo("alice/fidelity")
    api.create_commit(
        "alice/fidelity",
        [
            CommitOperationAdd("f/x.txt", b"x"),
            CommitOperationAdd("f/g/y.txt", b"y"),
            CommitOperationAdd("z.txt", b"z"),
        ],
        commit_message="files",
    )
    first = api.list_repo_commits("alice/fidelity")[0].commit_id
    api.create_commit("alice/fidelity", [CommitOperationDelete("f/")], commit_message="rm folder")
    assert api.list_repo_files("alice/fidelity") == [".gitattributes", "z.txt"]
    api.create_tag("alice/fidelity", tag="before-rm", revision=first)
    assert set(api.list_repo_files("alice/fidelity", revision="before-rm")) >= {"f/x.txt", "f/g/y.txt"}
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    with pytest.raises(EntryNotFoundError):
        api.create_commit("alice/fidelity", [CommitOperationDelete("f/")], commit_message="again")
    for bad in ("bad tag", "a..b", "v1.lock", "x~1"):
        with pytest.raises(HfHubHTTPError) as exc:
            api.create_tag("alice/fidelity", tag=bad)
        assert exc.value.response.status_code == 400
