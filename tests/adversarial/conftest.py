"""A two-user loopback Hub for the adversarial suite: alice (in `aliceorg`) and bob, each with a token.

`alice` owns a public and a private repo of each kind used here, each holding a regular file `a.txt`, an LFS
file `w.bin`, a branch `dev` and a tag `v1`. The attacks go through the real `huggingface_hub` client and raw
HTTP (`requests`), never through the server's Python API.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from huggingface_hub import CommitOperationAdd, HfApi

from factory.hub import HubServer

ALICE, BOB = "tok-alice", "tok-bob"
TOKENS = {ALICE: "alice", BOB: "bob"}
SECRET = b"alice's private weights " * 64  # an LFS file (`.bin`) in alice's private repo


@dataclass
class Hub:
    url: str
    root: Path
    alice: HfApi
    bob: HfApi

    def http(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)
        assert response.status_code < 500, f"{method} {path} answered {response.status_code}: {response.text[:300]}"
        return response


def ndjson(header: dict | None = None, *ops: tuple[str, dict]) -> bytes:
    lines = [{"key": "header", "value": header or {"summary": "attack"}}]
    lines += [{"key": k, "value": v} for k, v in ops]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def inline(path: str, data: bytes = b"x") -> tuple[str, dict]:
    return "file", {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}


def seed(api: HfApi, repo_id: str, private: bool, repo_type: str = "model") -> None:
    api.create_repo(repo_id, repo_type=repo_type, private=private)
    ops = [CommitOperationAdd("a.txt", b"hello"), CommitOperationAdd("w.bin", SECRET + repo_id.encode())]
    api.create_commit(repo_id, ops, commit_message="seed", repo_type=repo_type)
    api.create_branch(repo_id, branch="dev", repo_type=repo_type)
    api.create_tag(repo_id, tag="v1", repo_type=repo_type)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("adversarial") / "root"
    with HubServer(root, tokens=TOKENS, orgs={"alice": ["aliceorg"]}) as server:
        alice = HfApi(endpoint=server.url, token=ALICE)
        bob = HfApi(endpoint=server.url, token=BOB)
        for kind in ("model", "dataset"):
            seed(alice, f"alice/pub-{kind}", private=False, repo_type=kind)
            seed(alice, f"alice/priv-{kind}", private=True, repo_type=kind)
        yield Hub(server.url, Path(root), alice, bob)
