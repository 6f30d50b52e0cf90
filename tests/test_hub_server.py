"""The loopback Hub server, driven only through the real `huggingface_hub` client and `datasets`.

`tests/conftest.py` points HF_ENDPOINT at 127.0.0.1:HUB_PORT before `huggingface_hub` is imported; the
session fixture `hub_server` listens there. Tokens: `hf_test_token` (testuser, in testorg) and
`hf_other_token` (otheruser).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    get_hf_file_metadata,
    get_session,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import hf_raise_for_status

from factory.hub import HubServer

TOKEN, OTHER = "hf_test_token", "hf_other_token"
BIG = 10 * 1024 * 1024 + 123  # just over the Hub's 10 MB LFS threshold


@pytest.fixture(scope="module")
def api(hub_server: HubServer) -> HfApi:  # noqa: F811
    return HfApi(endpoint=hub_server.url, token=TOKEN)


def _status(exc: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return exc.value.response.status_code


def test_whoami_and_bad_token(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "testuser" and me["type"] == "user"
    assert [o["name"] for o in me["orgs"]] == ["testorg"]
    assert me["auth"]["accessToken"]["role"] == "write"
    with pytest.raises(HfHubHTTPError) as exc:
        HfApi(endpoint=api.endpoint, token="hf_wrong").whoami()
    assert _status(exc) == 401
    assert exc.value.response.headers["X-Request-Id"]


def test_create_repo_rules(api: HfApi) -> None:
    url = api.create_repo("testuser/rules-model")
    assert url.repo_id == "testuser/rules-model" and url.endpoint == api.endpoint
    assert api.create_repo("testuser/rules-model", exist_ok=True) == url
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("testuser/RULES-model")  # ids compare case-insensitively
    assert _status(exc) == 409
    assert api.model_info("TestUser/Rules-Model").id == "testuser/rules-model"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("otheruser/not-mine")
    assert _status(exc) == 403
    assert api.create_repo("testorg/shared", repo_type="dataset").repo_type == "dataset"

    commits = api.list_repo_commits("testuser/rules-model")
    assert [c.title for c in commits] == ["initial commit"]
    assert api.list_repo_files("testuser/rules-model") == [".gitattributes"]
    attrs = Path(hf_hub_download("testuser/rules-model", ".gitattributes", token=TOKEN)).read_text()
    assert "*.parquet filter=lfs" in attrs and "*.safetensors filter=lfs" in attrs

    api.delete_repo("testuser/rules-model")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("testuser/rules-model")


def test_model_round_trip_regular_and_lfs(api: HfApi, tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text('{"hidden_size": 64}')
    (src / "sub" / "notes.txt").write_text("small regular file")
    (src / "model.safetensors").write_bytes(os.urandom(2048))
    (src / "weights.dat").write_bytes(os.urandom(BIG))
    (src / "README.md").write_text("---\nlicense: apache-2.0\ntags: [factory]\n---\n# Tiny model\n")
    repo = api.create_repo("testuser/round-trip").repo_id
    info = api.upload_folder(repo_id=repo, folder_path=src, commit_message="add model")

    model = api.model_info(repo, files_metadata=True)
    assert model.sha == info.oid
    lfs = {s.rfilename: s.lfs is not None for s in model.siblings}
    assert lfs == {
        ".gitattributes": False,
        "README.md": False,
        "config.json": False,
        "model.safetensors": True,
        "sub/notes.txt": False,
        "weights.dat": True,
    }
    assert model.card_data.license == "apache-2.0" and model.tags == ["factory"]

    big = hf_hub_download(repo, "weights.dat", token=TOKEN)
    assert Path(big).read_bytes() == (src / "weights.dat").read_bytes()
    meta = get_hf_file_metadata(hf_hub_url(repo, "weights.dat"), token=TOKEN)
    entry = next(e for e in api.list_repo_tree(repo) if e.path == "weights.dat")
    assert meta.commit_hash == info.oid and meta.size == BIG and meta.etag == entry.lfs.sha256
    folder = Path(snapshot_download(repo, token=TOKEN))
    for f in ("config.json", "sub/notes.txt", "model.safetensors", "README.md"):
        assert (folder / f).read_bytes() == (src / f).read_bytes()

    top = {e.path: type(e).__name__ for e in api.list_repo_tree(repo)}
    assert top["sub"] == "RepoFolder" and top["config.json"] == "RepoFile" and "sub/notes.txt" not in top
    expanded = list(api.list_repo_tree(repo, recursive=True, expand=True))
    assert {e.path: e.last_commit.title for e in expanded}[".gitattributes"] == "initial commit"
    assert {e.path: e.last_commit.oid for e in expanded}["sub/notes.txt"] == info.oid
    paths = api.get_paths_info(repo, ["sub", "config.json", "missing.txt"])
    assert sorted(p.path for p in paths) == ["config.json", "sub"]

    with HfFileSystem(endpoint=api.endpoint, token=TOKEN).open(f"{repo}/weights.dat", "rb", block_size=4096) as fh:
        fh.seek(1000)
        assert fh.read(16) == (src / "weights.dat").read_bytes()[1000:1016]  # a Range request, answered 206


def test_create_commit_add_delete_and_stale_parent(api: HfApi) -> None:
    repo = api.create_repo("testuser/ops").repo_id
    first = api.create_commit(
        repo,
        [
            CommitOperationAdd("a.txt", b"a"),
            CommitOperationAdd("dir/b.txt", b"b"),
            CommitOperationAdd("dir/c.bin", b"c"),
        ],
        commit_message="three files",
    )
    second = api.create_commit(
        repo,
        [CommitOperationDelete("a.txt"), CommitOperationDelete("dir/")],
        commit_message="delete",
        parent_commit=first.oid,
    )
    assert api.list_repo_files(repo) == [".gitattributes"]
    assert api.list_repo_files(repo, revision=first.oid) == [".gitattributes", "a.txt", "dir/b.txt", "dir/c.bin"]
    assert [c.commit_id for c in api.list_repo_commits(repo)][:2] == [second.oid, first.oid]
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(repo, [CommitOperationAdd("late.txt", b"x")], commit_message="late", parent_commit=first.oid)
    assert _status(exc) == 412
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo, [CommitOperationDelete("never-there.txt")], commit_message="rm")

    many = [CommitOperationAdd(f"many/f{i:03d}.txt", str(i).encode()) for i in range(120)]
    last = api.create_commit(repo, many, commit_message="many files")
    listed = list(api.list_repo_tree(repo, path_in_repo="many", expand=True))  # pages of 50, followed by Link
    assert [e.path for e in listed] == [op.path_in_repo for op in many]
    assert {e.last_commit.oid for e in listed} == {last.oid}
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=b"---\nlicense: [unclosed\n---\n", path_in_repo="README.md", repo_id=repo)


def test_commit_rejects_parent_dir_paths(api: HfApi) -> None:
    repo = api.create_repo("testuser/paths").repo_id
    lines = [
        {"key": "header", "value": {"summary": "escape", "description": ""}},
        {"key": "file", "value": {"path": "../escape.txt", "content": "eA==", "encoding": "base64"}},
    ]
    response = get_session().post(
        f"{api.endpoint}/api/models/{repo}/commit/main",
        content=b"".join(json.dumps(line).encode() + b"\n" for line in lines),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
    )
    with pytest.raises(HfHubHTTPError) as exc:
        hf_raise_for_status(response)
    assert _status(exc) == 422


def test_tag_pins_old_content_and_refs(api: HfApi) -> None:
    repo = api.create_repo("testuser/tags").repo_id
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="data.txt", repo_id=repo)
    api.create_tag(repo, tag="v1.0", tag_message="first")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag(repo, tag="v1.0")
    assert _status(exc) == 409
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="data.txt", repo_id=repo)
    assert Path(hf_hub_download(repo, "data.txt", revision="v1.0", token=TOKEN)).read_bytes() == b"v1"
    assert Path(hf_hub_download(repo, "data.txt", token=TOKEN)).read_bytes() == b"v2"

    api.create_branch(repo, branch="dev", revision="v1.0")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_branch(repo, branch="dev")
    assert _status(exc) == 409
    with pytest.raises(HfHubHTTPError):
        api.delete_branch(repo, branch="main")
    refs = api.list_repo_refs(repo)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.ref for t in refs.tags] == ["refs/tags/v1.0"]
    assert refs.tags[0].target_commit == next(b.target_commit for b in refs.branches if b.name == "dev")
    api.delete_tag(repo, tag="v1.0")
    api.delete_branch(repo, branch="dev")
    assert api.list_repo_refs(repo).tags == []


def test_private_repo_invisible_to_others(api: HfApi) -> None:
    repo = api.create_repo("testuser/secret", private=True).repo_id
    api.upload_file(path_or_fileobj=b"shh", path_in_repo="secret.txt", repo_id=repo)
    assert api.model_info(repo).private is True
    other = HfApi(endpoint=api.endpoint, token=OTHER)
    with pytest.raises(RepositoryNotFoundError):
        other.model_info(repo)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=api.endpoint, token=False).list_repo_files(repo)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo, "secret.txt", token=OTHER)
    assert not other.repo_exists(repo) and api.repo_exists(repo)


def test_missing_repo_revision_and_file(api: HfApi) -> None:
    repo = api.create_repo("testuser/missing").repo_id
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo, ".gitattributes", revision="no-such-branch", token=TOKEN)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo, "nope.txt", token=TOKEN)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("testuser/never-created", "x.txt", token=TOKEN)
    assert not api.file_exists(repo, "nope.txt") and api.file_exists(repo, ".gitattributes")


def test_dataset_repo_loads_with_datasets(api: HfApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)  # no S3 ping
    monkeypatch.setattr(datasets.config, "USE_PARQUET_EXPORT", False)  # no datasets-server.* host
    src = tmp_path / "ds"
    (src / "data").mkdir(parents=True)
    rows = {"prompt": [f"q{i}" for i in range(50)], "score": list(range(50))}
    pq.write_table(pa.table(rows), src / "data" / "train-00000-of-00001.parquet")
    (src / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*.parquet\n---\n"
    )
    repo = api.create_repo("testuser/tiny-ds", repo_type="dataset").repo_id
    api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=src)
    assert api.dataset_info(repo).card_data.configs[0]["config_name"] == "default"

    ds = datasets.load_dataset(repo)
    assert list(ds) == ["train"] and ds["train"].num_rows == 50
    assert ds["train"]["prompt"][:2] == ["q0", "q1"]

    response = get_session().get(f"{api.endpoint}/api/datasets/{repo}/parquet/default/train")
    hf_raise_for_status(response)
    assert response.json()[0].endswith("/data/train-00000-of-00001.parquet")


def test_collections_round_trip(api: HfApi) -> None:
    model = api.create_repo("testuser/zoo-model").repo_id
    dataset = api.create_repo("testuser/zoo-data", repo_type="dataset").repo_id
    coll = api.create_collection(title="Tiny Zoo", description="small models")
    assert coll.slug.startswith("testuser/tiny-zoo-") and len(coll.slug.rsplit("-", 1)[1]) == 24
    assert api.create_collection(title="Tiny Zoo", exists_ok=True).slug == coll.slug
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_collection(title="Tiny Zoo")
    assert _status(exc) == 409

    api.add_collection_item(coll.slug, item_id=model, item_type="model", note="base")
    coll = api.add_collection_item(coll.slug, item_id=dataset, item_type="dataset")
    with pytest.raises(HfHubHTTPError) as exc:
        api.add_collection_item(coll.slug, item_id=model, item_type="model")
    assert _status(exc) == 409
    assert len(api.add_collection_item(coll.slug, item_id=model, item_type="model", exists_ok=True).items) == 2
    with pytest.raises(HfHubHTTPError):
        api.add_collection_item(coll.slug, item_id="testuser/no-such-model", item_type="model")

    data_item = next(i for i in coll.items if i.item_type == "dataset")
    api.update_collection_item(coll.slug, data_item.item_object_id, note="train split", position=0)
    got = api.get_collection(coll.slug)
    assert [(i.item_id, i.position, i.note) for i in got.items] == [(dataset, 0, "train split"), (model, 1, "base")]
    assert got.owner["name"] == "testuser" and got.description == "small models"

    renamed = api.update_collection_metadata(coll.slug, title="Tiny Zoo v2", private=True)
    assert renamed.slug.endswith(coll.slug.rsplit("-", 1)[1]) and renamed.private is True
    assert renamed.slug in [c.slug for c in api.list_collections(owner="testuser")]
    with pytest.raises(HfHubHTTPError):
        HfApi(endpoint=api.endpoint, token=OTHER).get_collection(renamed.slug)

    api.delete_collection_item(renamed.slug, data_item.item_object_id)
    assert [i.item_id for i in api.get_collection(renamed.slug).items] == [model]
    api.delete_collection(renamed.slug)
    with pytest.raises(HfHubHTTPError) as exc:
        api.get_collection(renamed.slug)
    assert _status(exc) == 404


def test_restart_keeps_repos_and_failed_ref_update_keeps_revision(tmp_path: Path) -> None:
    root = tmp_path / "hub-root"
    with HubServer(root) as first:
        api = HfApi(endpoint=first.url, token=TOKEN)
        repo = api.create_repo("testorg/persisted").repo_id
        commit = api.upload_file(path_or_fileobj=b"kept", path_in_repo="kept.txt", repo_id=repo)
        api.create_tag(repo, tag="v1")

        def crash(*args: object, **kwargs: object) -> None:
            raise OSError("disk gone before the ref moved")

        first.storage.set_ref = crash  # type: ignore[method-assign]
        with pytest.raises(HfHubHTTPError) as exc:
            api.upload_file(path_or_fileobj=b"lost", path_in_repo="kept.txt", repo_id=repo)
        assert _status(exc) == 500
    with HubServer(root) as second:
        api = HfApi(endpoint=second.url, token=TOKEN)
        assert api.model_info("TestOrg/Persisted").sha == commit.oid
        assert {t.name for t in api.list_repo_refs(repo).tags} == {"v1"}
        path = hf_hub_download(repo, "kept.txt", endpoint=second.url, token=TOKEN, force_download=True)
        assert Path(path).read_bytes() == b"kept"


def test_command_line_prints_ready(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "factory.hub", "--root", str(tmp_path / "cli"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        assert line.startswith("READY http://127.0.0.1:")
        assert HfApi(endpoint=line.split()[1], token=TOKEN).whoami()["name"] == "testuser"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
