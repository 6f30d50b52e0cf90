"""Attacks on the loopback Hub found in an audit: numbers too long for `int()`, README `configs:` of the wrong
shape, a private collection probed through another's items, and commits or listings whose work grew with the
square of their size. Real `huggingface_hub` client and raw HTTP against the two-user hub of conftest."""

from __future__ import annotations

import hashlib

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete

from tests.adversarial.conftest import ALICE, BOB, Hub, inline, ndjson

HUGE = "9" * 5000  # past the 4,300 digits `int()` reads


@pytest.mark.parametrize(
    "value,status,body",
    [(f"bytes={HUGE}-", 416, b""), (f"bytes=0-{HUGE}", 206, b"hello"), (f"bytes=-{HUGE}", 206, b"hello")],
)
def test_a_range_with_a_5000_digit_number_is_answered(hub: Hub, value: str, status: int, body: bytes) -> None:
    answer = hub.http("GET", "/alice/pub-model/resolve/main/a.txt", headers={"Range": value})
    assert answer.status_code == status
    if status == 206:
        assert answer.content == body and answer.headers["Content-Range"] == "bytes 0-4/5"


@pytest.mark.parametrize("limit", ["%C2%B2", HUGE, "-1"])  # "²" passes str.isdigit(), not int()
def test_collection_listing_limit_is_checked(hub: Hub, limit: str) -> None:
    assert hub.http("GET", f"/api/collections?limit={limit}").status_code == 400
    assert hub.http("GET", "/api/collections?limit=1").status_code == 200


HOSTILE_CONFIGS = [
    "  data_files:\n  - split: train\n    path: 5\n",
    "  data_files:\n  - 7\n",
    "  data_files: 5\n",
    "  data_files:\n  - split: train\n    path: [1, {a: b}]\n",
    "  data_files:\n  - split: [x]\n    path: '*.parquet'\n",
]


@pytest.fixture(scope="module")
def cards_repo(hub: Hub) -> str:
    repo = "alice/cards"
    hub.alice.create_repo(repo, repo_type="dataset")
    hub.alice.create_commit(repo, [CommitOperationAdd("data/train.parquet", b"PAR1")], commit_message="data",
                            repo_type="dataset")
    return repo


@pytest.mark.parametrize("config", HOSTILE_CONFIGS)
def test_readme_configs_of_the_wrong_shape_do_not_break_the_parquet_listing(hub: Hub, cards_repo: str,
                                                                            config: str) -> None:
    card = f"---\nconfigs:\n- config_name: bad\n{config}- config_name: good\n  data_files: 'data/*.parquet'\n---\n"
    hub.alice.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=cards_repo,
                          repo_type="dataset")
    answer = hub.http("GET", f"/api/datasets/{cards_repo}/parquet", BOB)
    assert answer.status_code == 200
    assert [url.rsplit("/", 2)[-2:] for url in answer.json()["good"]["train"]] == [["data", "train.parquet"]]
    assert hub.bob.dataset_info(cards_repo).card_data is not None


def test_parquet_matching_work_is_capped(hub: Hub, cards_repo: str) -> None:
    # 1,500 globs (a 40 KB card) over 1,000 files is 1.5 M pattern matches for every reader of the repo
    hub.alice.create_commit(cards_repo, [CommitOperationAdd(f"many/p{i}.parquet", b"PAR1") for i in range(999)],
                            commit_message="many", repo_type="dataset")
    globs = "".join(f"    - 'many/p{i}*.parquet'\n" for i in range(1500))
    card = f"---\nconfigs:\n- config_name: wide\n  data_files:\n  - split: train\n    path:\n{globs}---\n"
    hub.alice.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=cards_repo,
                          repo_type="dataset")
    answer = hub.http("GET", f"/api/datasets/{cards_repo}/parquet", BOB)
    assert answer.status_code == 400 and "data_files patterns" in answer.json()["error"]


def test_a_private_collection_cannot_be_probed_as_an_item(hub: Hub) -> None:
    secret = hub.alice.create_collection("private shelf audit", private=True, exists_ok=True)
    mine = hub.bob.create_collection("bob shelf audit", exists_ok=True)
    missing = secret.slug[:-6] + ("000000" if not secret.slug.endswith("000000") else "111111")
    answers = [hub.http("POST", f"/api/collections/{mine.slug}/items", BOB,
                        json={"item": {"id": slug, "type": "collection"}}) for slug in (secret.slug, missing)]
    assert [a.status_code for a in answers] == [404, 404] and answers[0].json() == answers[1].json()
    assert hub.bob.get_collection(mine.slug).items == []


def test_a_commit_of_20000_files_is_linear_not_quadratic(hub: Hub) -> None:
    # every added path was tested against every path already in the tree: 20,000 files took ~2 minutes (with the
    # storage lock held, so every other write waited); the client's 30 s timeout would fire
    hub.alice.create_repo("alice/wide")
    body = ndjson(None, *[inline(f"d{i % 100}/f{i}.txt", b"x") for i in range(20_000)])
    answer = hub.http("POST", "/api/models/alice/wide/commit/main", ALICE, data=body)
    assert answer.status_code == 200, answer.text[:200]
    paths = [f"d{i % 100}/f{i}.txt" for i in range(10_000)]
    # each path's last commit was found by testing it against every changed path of each commit: 10^8 tests
    info = hub.http("POST", "/api/models/alice/wide/paths-info/main", ALICE, json={"paths": paths, "expand": True})
    assert info.status_code == 200 and len(info.json()) == 10_000
    assert {item["lastCommit"]["id"] for item in info.json()} == {answer.json()["commitOid"]}


def test_folder_rules_hold_inside_one_commit(hub: Hub) -> None:
    api, repo = hub.alice, "alice/folders"
    api.create_repo(repo)
    api.create_commit(repo, [CommitOperationAdd("a/b/c.txt", b"1"), CommitOperationAdd("a/d.txt", b"2")],
                      commit_message="tree")
    for path in ("a", "a/b", "a/b/c.txt/x"):  # a file over a folder, a file under a file
        answer = hub.http("POST", f"/api/models/{repo}/commit/main", ALICE, data=ndjson(None, inline(path)))
        assert answer.status_code == 422, path
    # a folder emptied earlier in the same commit may become a file; deleting a folder takes all below it
    ops = [CommitOperationDelete("a/b/c.txt"), CommitOperationAdd("a/b", b"now a file")]
    api.create_commit(repo, ops, commit_message="swap")
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", "a/b", "a/d.txt"]
    api.create_commit(repo, [CommitOperationDelete("a/"), CommitOperationAdd("a", b"file")], commit_message="fold")
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", "a"]
    gone = hub.http("POST", f"/api/models/{repo}/commit/main", ALICE,
                    data=ndjson(None, ("deletedFolder", {"path": "a/"})))
    assert gone.status_code == 404


def test_a_private_repo_cannot_be_probed_through_the_collection_item_filter(hub: Hub) -> None:
    shelf = hub.alice.create_collection("public shelf audit", exists_ok=True)
    hub.alice.add_collection_item(shelf.slug, "alice/priv-model", "model", exists_ok=True)
    hub.alice.add_collection_item(shelf.slug, "alice/pub-model", "model", exists_ok=True)
    for token in (BOB, None):
        found = [hub.http("GET", "/api/collections", token, params={"item": f"models/alice/{name}"}).json()
                 for name in ("priv-model", "no-such-model", "pub-model")]
        assert found[0] == found[1] == [] and [c["slug"] for c in found[2]] == [shelf.slug]
    # alice, who may read it, still finds her shelf by it
    assert [c.slug for c in hub.alice.list_collections(item="models/alice/priv-model")] == [shelf.slug]


def test_an_lfs_batch_reads_the_repo_history_once_not_once_per_object(hub: Hub) -> None:
    # an oid another repo holds made the server scan every commit of this one, once per object in the batch:
    # 2,000 against 10 commits of 2,000 files each took 13 s of the event loop (every client waited)
    held = b"held by another repo"
    hub.alice.create_repo("alice/holder")
    hub.alice.create_repo("alice/history")
    assert hub.http("POST", "/api/models/alice/holder/commit/main", ALICE,
                    data=ndjson(None, inline("held.txt", held))).status_code == 200
    for k in range(5):
        ops = [inline(f"k{k}/f{i}.txt", b"x") for i in range(3000)]
        hub.http("POST", "/api/models/alice/history/commit/main", ALICE, data=ndjson(None, *ops))
    objects = [{"oid": hashlib.sha256(held).hexdigest(), "size": len(held)}] * 20_000
    answer = hub.http("POST", "/alice/history.git/info/lfs/objects/batch", ALICE,
                      json={"operation": "upload", "objects": objects})
    assert answer.status_code == 200
    # it is not this repo's: it must be uploaded here, whoever else holds it
    assert all("upload" in o["actions"] for o in answer.json()["objects"])


def test_the_500_log_line_leaves_the_query_string_out(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    """A failure the server did not expect (here: its own refs.json damaged on disk) is logged with the path only:
    the query string of an upload URL carries its signature."""
    import logging

    import requests
    from huggingface_hub import HfApi

    from factory.hub.server import HubServer

    root = tmp_path / "root"
    with HubServer(root, tokens={"hf_alice_token": "alice"}) as server:
        api = HfApi(endpoint=server.url, token="hf_alice_token")
        api.create_repo("alice/damaged")
        api.upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id="alice/damaged")
        (root / "repos" / "model" / "alice" / "damaged" / "refs.json").write_text("{not json")
        with caplog.at_level(logging.ERROR, logger="factory.hub"):
            answer = requests.get(f"{server.url}/alice/damaged/resolve/main/a.txt?sig=SECRET-SIGNATURE",
                                  headers={"Authorization": "Bearer hf_alice_token"}, timeout=30)
    assert answer.status_code == 500 and "SECRET" not in answer.text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/alice/damaged/resolve/main/a.txt failed" in logged and "SECRET-SIGNATURE" not in caplog.text
