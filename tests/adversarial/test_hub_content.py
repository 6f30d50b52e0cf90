"""Cross-user reads through the shared blob store: knowing a private file's sha256 must give nothing.

Blobs are stored once for the whole server, so the attacks are: commit an LFS pointer to another user's
object, ask the LFS batch API whether an object exists, and reuse one repo's signed upload URL for another.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationCopy, hf_hub_download

from tests.adversarial.conftest import ALICE, BOB, SECRET, Hub, ndjson

SECRET_SHA = hashlib.sha256(SECRET + b"alice/priv-model").hexdigest()
SECRET_SIZE = len(SECRET + b"alice/priv-model")


@pytest.fixture(scope="module")
def bob_repo(hub: Hub) -> str:
    return hub.bob.create_repo("bob/loot").repo_id


def _batch(hub: Hub, repo: str, token: str, oid: str, size: int) -> dict:
    body = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]}
    answer = hub.http("POST", f"/{repo}.git/info/lfs/objects/batch", token, json=body)
    assert answer.status_code == 200
    return answer.json()["objects"][0]


def test_lfs_pointer_to_another_users_object_is_refused(hub: Hub, bob_repo: str) -> None:
    pointer = ("lfsFile", {"path": "stolen.bin", "algo": "sha256", "oid": SECRET_SHA, "size": SECRET_SIZE})
    stolen = hub.http("POST", f"/api/models/{bob_repo}/commit/main", BOB, data=ndjson(None, pointer))
    nothing = ("lfsFile", {"path": "stolen.bin", "algo": "sha256", "oid": "ab" * 32, "size": SECRET_SIZE})
    absent = hub.http("POST", f"/api/models/{bob_repo}/commit/main", BOB, data=ndjson(None, nothing))
    assert stolen.status_code == absent.status_code == 400
    assert stolen.json()["error"] == absent.json()["error"]  # reads exactly like a pointer to nothing
    assert "stolen.bin" not in hub.bob.list_repo_files(bob_repo)
    download = hub.http("GET", f"/{bob_repo}/resolve/main/stolen.bin", BOB)
    assert download.status_code == 404 and SECRET not in download.content


def test_lfs_batch_answers_existence_per_repo(hub: Hub, bob_repo: str) -> None:
    theirs = _batch(hub, bob_repo, BOB, SECRET_SHA, SECRET_SIZE)
    unknown = _batch(hub, bob_repo, BOB, "cd" * 32, SECRET_SIZE)
    assert "upload" in theirs["actions"] and "upload" in unknown["actions"]  # both "not here: upload it"
    assert set(theirs) == set(unknown)
    mine = _batch(hub, "alice/priv-model", ALICE, SECRET_SHA, SECRET_SIZE)
    assert "actions" not in mine  # the owner's repo has it


def test_upload_url_is_bound_to_its_repo_and_size(hub: Hub, bob_repo: str) -> None:
    data = b"bob's own bytes"
    oid = hashlib.sha256(data).hexdigest()
    href = _batch(hub, bob_repo, BOB, oid, len(data))["actions"]["upload"]["href"]
    path = href[len(hub.url) :]
    moved = path.replace(bob_repo, "alice/priv-model")
    assert hub.http("PUT", moved, data=data).status_code == 403  # signed for bob/loot only
    assert hub.http("PUT", path.replace(f"size={len(data)}", "size=9999"), data=data).status_code == 403
    too_big = hub.http("PUT", path, data=data + b"extra")
    assert too_big.status_code == 400
    assert hub.http("PUT", path, data=data).status_code == 200
    assert "actions" not in _batch(hub, bob_repo, BOB, oid, len(data))


def test_unsigned_upload_cannot_probe_private_repos(hub: Hub) -> None:
    oid = "ef" * 32
    private = hub.http("PUT", f"/alice/priv-model.git/info/lfs/objects/upload/{oid}?size=1&sig=x", data=b"x")
    missing = hub.http("PUT", f"/alice/missing.git/info/lfs/objects/upload/{oid}?size=1&sig=x", data=b"x")
    assert (private.status_code, private.json()) == (missing.status_code, missing.json()) == (403, missing.json())


def test_owner_and_uploader_still_reference_content(hub: Hub, bob_repo: str, tmp_path: Path) -> None:
    # bob holds the same bytes himself: uploading them to his repo works (stored once, granted to him)
    hub.bob.create_commit(bob_repo, [CommitOperationAdd("copy.bin", SECRET + b"alice/priv-model")], commit_message="m")
    got = Path(hf_hub_download(bob_repo, "copy.bin", endpoint=hub.url, token=BOB, cache_dir=tmp_path))
    assert hashlib.sha256(got.read_bytes()).hexdigest() == SECRET_SHA
    # alice copies an LFS file inside her repo: the server-side copy references her own object
    hub.alice.create_commit("alice/priv-model", [CommitOperationCopy("w.bin", "w-copy.bin")], commit_message="copy")
    assert {"w.bin", "w-copy.bin"} <= set(hub.alice.list_repo_files("alice/priv-model"))
    # and a repo made by another user under a freed name inherits nothing
    hub.alice.create_repo("alice/tmp-priv", private=True)
    hub.alice.upload_file(path_or_fileobj=b"tmp secret" * 100, path_in_repo="t.bin", repo_id="alice/tmp-priv")
    tmp_sha = hashlib.sha256(b"tmp secret" * 100).hexdigest()
    hub.alice.delete_repo("alice/tmp-priv")
    hub.alice.create_repo("alice/tmp-priv")
    assert "upload" in _batch(hub, "alice/tmp-priv", ALICE, tmp_sha, 1000)["actions"]
