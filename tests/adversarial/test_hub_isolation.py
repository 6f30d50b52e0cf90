"""Two-user isolation matrix: every read and write endpoint x public/private x owner/other/anonymous.

A private repo answers others exactly as a missing one does (404 `RepoNotFound`, same body), so its name
cannot be probed; a public one is readable by all and writable by its owner only (403 for others, 401 for
anonymous callers).
"""

from __future__ import annotations

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.adversarial.conftest import ALICE, BOB, Hub, inline, ndjson

WHO = {"owner": ALICE, "other": BOB, "anonymous": None}
KINDS = {"model": ("models", ""), "dataset": ("datasets", "datasets/")}

# (name, method, path template, request kwargs); {api} = /api/models/ID, {git} = /ID or /datasets/ID
READS = [
    ("info", "GET", "{api}", {}),
    ("revision", "GET", "{api}/revision/dev", {}),
    ("refs", "GET", "{api}/refs", {}),
    ("commits", "GET", "{api}/commits/main", {}),
    ("tree", "GET", "{api}/tree/main", {}),
    ("tree-tag", "GET", "{api}/tree/v1?recursive=1&expand=1", {}),
    ("paths-info", "POST", "{api}/paths-info/main", {"data": {"paths": ["a.txt", "w.bin"], "expand": "1"}}),
    ("auth-check", "GET", "{api}/auth-check", {}),
    ("resolve", "GET", "{git}/resolve/main/a.txt", {}),
    ("resolve-lfs", "GET", "{git}/resolve/v1/w.bin", {}),
    ("resolve-head", "HEAD", "{git}/resolve/main/w.bin", {}),
    ("resolve-range", "GET", "{git}/resolve/main/w.bin", {"headers": {"Range": "bytes=0-9"}}),
]


def _paths(kind: str, repo_id: str) -> dict[str, str]:
    plural, prefix = KINDS[kind]
    return {"api": f"/api/{plural}/{repo_id}", "git": f"/{prefix}{repo_id}"}


def _call(hub: Hub, spec: tuple, kind: str, repo_id: str, token: str | None):
    _, method, template, kwargs = spec
    kwargs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in kwargs.items()}
    return hub.http(method, template.format(**_paths(kind, repo_id)), token, **kwargs)


def _same_as_missing(hub: Hub, spec: tuple, kind: str, response, token: str | None) -> None:
    missing = _call(hub, spec, kind, "alice/no-such-repo", token)
    assert response.status_code == missing.status_code == 404
    assert response.headers.get("X-Error-Code") == missing.headers.get("X-Error-Code") == "RepoNotFound"
    if spec[1] != "HEAD":
        assert response.json() == missing.json()


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("visibility", ["pub", "priv"])
@pytest.mark.parametrize("spec", READS, ids=[r[0] for r in READS])
def test_read_matrix(hub: Hub, spec: tuple, visibility: str, who: str, kind: str) -> None:
    repo_id = f"alice/{visibility}-{kind}"
    response = _call(hub, spec, kind, repo_id, WHO[who])
    if visibility == "pub" or who == "owner":
        assert response.status_code in (200, 206), response.text[:200]
        if spec[0] == "resolve":
            assert response.content == b"hello"
    else:
        _same_as_missing(hub, spec, kind, response, WHO[who])


def _lfs_batch(oid: str = "0" * 64) -> dict:
    return {"json": {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": 1}]}}


# Writes whose owner call is harmless to repeat; {n} makes branch and tag names unique per case.
WRITES = [
    ("preupload", "POST", "{api}/preupload/main", {"json": {"files": [{"path": "x.txt", "size": 1}]}}),
    ("commit", "POST", "{api}/commit/main", {"data": ndjson(None, inline("m/{n}.txt"))}),
    ("lfs-batch", "POST", "{git}.git/info/lfs/objects/batch", _lfs_batch()),
    ("branch", "POST", "{api}/branch/b-{n}", {"json": {}}),
    ("branch-delete", "DELETE", "{api}/branch/dev-{n}", {}),
    ("tag", "POST", "{api}/tag/main", {"json": {"tag": "t-{n}"}}),
    ("tag-delete", "DELETE", "{api}/tag/v1-{n}", {}),
    ("settings", "PUT", "{api}/settings", {"json": {}}),
    ("auth-check-write", "GET", "{api}/auth-check/write", {}),
]


def _write(hub: Hub, spec: tuple, kind: str, repo_id: str, token: str | None, n: str):
    _, method, template, kwargs = spec
    fixed = {}
    for key, value in kwargs.items():
        if isinstance(value, bytes):
            value = value.replace(b"{n}", n.encode())
        elif isinstance(value, dict) and "tag" in value:
            value = {**value, "tag": value["tag"].format(n=n)}
        fixed[key] = value
    path = template.format(**_paths(kind, repo_id), n=n)
    if spec[0] in ("branch-delete", "tag-delete") and token == ALICE:
        # the owner deletes a ref that exists: make it first
        made = "branch" if spec[0] == "branch-delete" else "tag"
        api = hub.alice
        if made == "branch":
            api.create_branch(repo_id, branch=f"dev-{n}", repo_type=kind)
        else:
            api.create_tag(repo_id, tag=f"v1-{n}", repo_type=kind)
    return hub.http(method, path, token, **fixed)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("visibility", ["pub", "priv"])
@pytest.mark.parametrize("spec", WRITES, ids=[w[0] for w in WRITES])
def test_write_matrix(hub: Hub, spec: tuple, visibility: str, who: str, kind: str) -> None:
    repo_id = f"alice/{visibility}-{kind}"
    n = f"{visibility}{who}{kind}"
    before = hub.alice.list_repo_refs(repo_id, repo_type=kind)
    response = _write(hub, spec, kind, repo_id, WHO[who], n)
    if who == "owner":
        assert response.status_code == 200, response.text[:300]
        return
    if who == "anonymous":
        assert response.status_code == 401
    elif visibility == "pub":
        assert response.status_code == 403
    else:
        assert response.status_code == 404 and response.headers.get("X-Error-Code") == "RepoNotFound"
        missing = _write(hub, spec, kind, "alice/no-such-repo", WHO[who], n)
        assert (missing.status_code, missing.json()) == (404, response.json())
    assert hub.alice.list_repo_refs(repo_id, repo_type=kind) == before  # nothing moved


@pytest.mark.parametrize("who", ["other", "anonymous"])
def test_repo_delete_and_visibility_change_refused(hub: Hub, who: str) -> None:
    token = WHO[who]
    for repo in ("pub-model", "priv-model"):
        body = {"name": repo, "organization": "alice", "type": "model"}
        answer = hub.http("DELETE", "/api/repos/delete", token, json=body)
        assert answer.status_code in (401, 403, 404)
        settings = hub.http("PUT", f"/api/models/alice/{repo}/settings", token, json={"private": False})
        assert settings.status_code in (401, 403, 404)
    assert hub.alice.model_info("alice/priv-model").private is True
    assert hub.alice.model_info("alice/pub-model").private is False


@pytest.mark.parametrize("who", ["other", "anonymous"])
def test_client_sees_private_repo_as_missing(hub: Hub, who: str) -> None:
    api = HfApi(endpoint=hub.url, token=WHO[who] or False)
    for call in (
        lambda: api.model_info("alice/priv-model"),
        lambda: api.list_repo_files("alice/priv-model"),
        lambda: api.list_repo_refs("alice/priv-model"),
        lambda: api.list_repo_commits("alice/priv-model"),
        lambda: api.auth_check("alice/priv-model"),
        lambda: hf_hub_download("alice/priv-model", "a.txt", endpoint=hub.url, token=WHO[who] or False),
        lambda: api.dataset_info("alice/priv-dataset"),
    ):
        with pytest.raises(RepositoryNotFoundError):
            call()
    assert api.repo_exists("alice/priv-model") is False
    assert api.file_exists("alice/priv-model", "a.txt") is False
    assert api.repo_exists("alice/pub-model") is True
    listed = {m.id for m in api.list_models(author="alice")}
    assert "alice/pub-model" in listed and "alice/priv-model" not in listed
    assert "alice/priv-dataset" not in {d.id for d in api.list_datasets(author="alice")}


def test_client_owner_fidelity(hub: Hub) -> None:
    api = hub.alice
    assert api.repo_exists("alice/priv-model") and api.file_exists("alice/priv-model", "w.bin")
    assert not api.file_exists("alice/priv-model", "nope.txt") and not api.repo_exists("alice/nothing")
    assert api.file_exists("alice/priv-dataset", "a.txt", repo_type="dataset", revision="v1")
    api.auth_check("alice/priv-model")
    api.auth_check("alice/priv-model", write=True)
    with pytest.raises(HfHubHTTPError) as exc:
        hub.bob.auth_check("alice/pub-model", write=True)
    assert exc.value.response.status_code == 403
    hub.bob.auth_check("alice/pub-model")  # reading a public repo is allowed
    with pytest.raises(RepositoryNotFoundError):
        api.auth_check("alice/nothing")
