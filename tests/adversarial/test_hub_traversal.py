"""Path traversal in every name and path field, against a single-user Hub (the `factory hub serve` default,
where the one user may write to any namespace, so only name validation stands between a body and the disk)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from huggingface_hub import HfApi

from factory.hub import HubServer
from tests.adversarial.conftest import Hub, inline, ndjson

TOKEN = "tok-solo"
BAD_NAMES = [
    "..",
    ".",
    "../x",
    "../../../escape",
    "a/b",
    "x\n",
    "x\x00y",
    "x" * 97,
    "",
    "-x",
    "x-",
    ".hidden",
    "a..b",
    "a--b",
    "x.git",
    "\u00e9t\u00e9",
    "a b",
    "a\\b",
    "%2e%2e",
    "x\r",
    " x",
    "x\t",
]
BAD_PATHS = [
    "../x",
    "a/../../x",
    "/abs",
    "a\\b",
    ".git/config",
    "a/.git/x",
    "a/./b",
    "a//b",
    "a\x00b",
    "a\nb",
    "x" * 2000,
    ".",
    "..",
    "",
]


@pytest.fixture(scope="module")
def solo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("solo")
    root = base / "deep" / "root"
    with HubServer(root, tokens={TOKEN: "solo"}, orgs={}) as server:
        api = HfApi(endpoint=server.url, token=TOKEN)
        api.create_repo("solo/target")
        yield Hub(server.url, root, api, api)


def _outside(root: Path) -> set[str]:
    """Everything under the grandparent of `root` that is not under `root`."""
    base = root.parent.parent
    found = set()
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if not path.is_relative_to(root) and path != root:
                found.add(str(path.relative_to(base)))
    return found


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_repo_and_namespace_names_refused(solo: Hub, name: str) -> None:
    before = _outside(solo.root)
    bodies = [{"name": name}, {"name": name, "organization": "solo"}]
    if name:  # an empty organization means the caller's own namespace, as on the Hub
        bodies += [{"name": "ok", "organization": name}, {"name": name, "organization": name}]
    for body in bodies:
        for kind in ("model", "dataset"):
            answer = solo.http("POST", "/api/repos/create", TOKEN, json={**body, "type": kind})
            assert answer.status_code == 400, (body, answer.text)
    answer = solo.http("DELETE", "/api/repos/delete", TOKEN, json={"name": name, "organization": "solo"})
    assert answer.status_code in (400, 404)
    assert _outside(solo.root) == before
    for listed in solo.alice.list_models():
        assert listed.id in ("solo/target", "solo/ok")


@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
def test_bad_paths_in_commits_refused(solo: Hub, path: str) -> None:
    head = solo.alice.model_info("solo/target").sha
    for op in (
        inline(path),
        ("lfsFile", {"path": path, "algo": "sha256", "oid": "0" * 64, "size": 1}),
        ("deletedFile", {"path": path}),
        ("deletedFolder", {"path": path}),
    ):
        answer = solo.http("POST", "/api/models/solo/target/commit/main", TOKEN, data=ndjson(None, op))
        assert answer.status_code == 422, (op, answer.text)
    pre = solo.http(
        "POST", "/api/models/solo/target/preupload/main", TOKEN, json={"files": [{"path": path, "size": 1}]}
    )
    assert pre.status_code == 422
    assert solo.alice.model_info("solo/target").sha == head


@pytest.mark.parametrize("path", BAD_PATHS + ["../../repo.json", "../refs.json"], ids=repr)
def test_bad_paths_in_reads_find_nothing(solo: Hub, path: str) -> None:
    q = quote(path, safe="")
    answer = solo.http("GET", f"/solo/target/resolve/main/{q}", TOKEN)
    assert answer.status_code in (400, 404) and b"heads" not in answer.content
    listing = solo.http("GET", f"/api/models/solo/target/tree/main/{q}", TOKEN)
    if listing.status_code == 200:  # "." and "" normalise to the repo's own root, nothing above it
        assert path in (".", "") and [e["path"] for e in listing.json()] == [".gitattributes"]
    else:
        assert listing.status_code in (400, 404)
    info = solo.http("POST", "/api/models/solo/target/paths-info/main", TOKEN, data={"paths": [path]})
    assert info.status_code in (200, 400) and (info.status_code == 400 or info.json() == [])


@pytest.mark.parametrize(
    "repo", ["..%2F..%2Fblobs", "solo%2F..", "..%2Frepos", "%2e%2e/%2e%2e", "solo/target%00", "solo/x%0A"]
)
def test_bad_repo_ids_in_urls(solo: Hub, repo: str) -> None:
    for url in (f"/api/models/{repo}", f"/{repo}/resolve/main/repo.json", f"/api/models/{repo}/refs"):
        answer = solo.http("GET", url, TOKEN)
        assert answer.status_code in (400, 404)
    answer = solo.http("POST", f"/api/models/{repo}/commit/main", TOKEN, data=ndjson(None, inline("a.txt")))
    assert answer.status_code in (400, 404)


BAD_REFS = [
    "../x",
    "a..b",
    "bad tag",
    "x~1",
    "x^",
    "x:y",
    "v1.lock",
    "-x",
    "a\n",
    "@",
    "x/",
    "/x",
    "a//b",
    "x.",
    "refs/heads/x",
    "a@{1}",
    "q?",
    "s*",
    "[x",
    "a\\b",
    ".x",
    "x" * 300,
    "0" * 40,
]


@pytest.mark.parametrize("ref", BAD_REFS, ids=repr)
def test_bad_branch_and_tag_names_refused(solo: Hub, ref: str) -> None:
    tag = solo.http("POST", "/api/models/solo/target/tag/main", TOKEN, json={"tag": ref})
    branch = solo.http("POST", f"/api/models/solo/target/branch/{quote(ref, safe='')}", TOKEN, json={})
    assert tag.status_code == 400
    assert branch.status_code in (400, 404)  # a trailing or leading "/" never reaches the handler as a name
    refs = solo.alice.list_repo_refs("solo/target")
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


@pytest.mark.parametrize("rev", ["..", "../../x", "main/../..", "refs/heads/../..", "\x00", "refs/pr/../../x"])
def test_bad_revisions_are_not_found(solo: Hub, rev: str) -> None:
    rev = quote(rev, safe="").replace(".", "%2E")  # so no dot segment is normalised away before the server
    for url in (f"/solo/target/resolve/{rev}/x", f"/api/models/solo/target/revision/{rev}"):
        answer = solo.http("GET", url, TOKEN)
        assert answer.status_code in (400, 404)


@pytest.mark.parametrize(
    "slug", ["..%2F..%2Frepos", "solo/%2E%2E", "solo/x-..%2F..%2Fblobs", "solo/%00", "solo/x-%2E%2E%2F0123"]
)
def test_bad_collection_slugs(solo: Hub, slug: str) -> None:
    for method in ("GET", "DELETE", "PATCH"):
        answer = solo.http(method, f"/api/collections/{slug}", TOKEN, json={"title": "x"})
        assert answer.status_code in (400, 404, 405)
