"""Secret-leak test: publish a dataset and a checkpoint with a distinctive Hub token and API keys in the
environment and in $FACTORY_HOME/config.yaml, then search every file of the pushed repos (downloaded), every file
of the store and everything printed: no secret may appear anywhere.

It runs its own loopback Hub whose only token is the distinctive one, and the real CLI in subprocesses.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from huggingface_hub import HfApi, snapshot_download

from factory.hub import HubServer
from tests.helpers import run_factory

HUB_TOKEN = "hf_LeakCheck7Qw2ZtY9vR4mN8sB3xK6"
SECRETS = {
    "HF_TOKEN": HUB_TOKEN,
    "OPENAI_API_KEY": "sk-proj-LeakCheckOpenAI5d1c9e7f2a",
    "ANTHROPIC_API_KEY": "sk-ant-LeakCheckAnthropic8b3e6a",
    "TOGETHER_API_KEY": "tg-LeakCheckTogether3f9a1c",
}
CONFIG_KEY = "cfg-LeakCheckFromConfigYaml4e8b"


def _texts(path: Path) -> bytes:
    """A file's bytes, plus its rows as JSON when it is Parquet (compressed pages would hide a string)."""
    data = path.read_bytes()
    if path.suffix == ".parquet":
        data += pl.read_parquet(path).write_ndjson().encode()
    return data


def _leaks(files: list[Path]) -> list[str]:
    needles = [*SECRETS.values(), CONFIG_KEY]
    return [f"{f}: {n[:12]}…" for f in files for n in needles if n.encode() in _texts(f)]


def test_no_secret_reaches_the_hub_or_the_store(tmp_path: Path, tiny_dir: Path) -> None:
    from tests.test_publish_checkpoint import build_lora_checkpoint

    home = tmp_path / ".factory"
    with HubServer(tmp_path / "hub", tokens={HUB_TOKEN: "leaker"}, orgs={}) as hub:
        env = {**SECRETS, "HF_ENDPOINT": hub.url}
        outputs = [run_factory("datasets", "import", "seeds:dolly", "--name", "dolly-seed", home=home, env=env)]
        (home / "config.yaml").write_text(
            f"providers:\n  openai:\n    api_key: {CONFIG_KEY}\n    base_url: http://127.0.0.1:9/v1\n")
        ckpt = build_lora_checkpoint(tiny_dir, tmp_path / "ckpt", [{"name": "dolly-seed", "version": "0" * 12}],
                                     {"mt-bench": {"score": 3.0}})
        outputs.append(run_factory("publish", "dolly-seed", "--repo", "leaker/data", "--private",
                                   "--collection", "Leak zoo", home=home, env=env))
        outputs.append(run_factory("publish", str(ckpt), "--repo", "leaker/model", "--collection", "Leak zoo",
                                   home=home, env=env))
        outputs.append(run_factory("zoo", "list", home=home, env=env))
        for out in outputs:
            assert out.returncode == 0, out.stderr
            assert not [n for n in [*SECRETS.values(), CONFIG_KEY] if n in out.stdout + out.stderr]

        api = HfApi(endpoint=hub.url, token=HUB_TOKEN)
        pushed = []
        for repo, kind in (("leaker/data", "dataset"), ("leaker/model", "model")):
            folder = Path(snapshot_download(repo, repo_type=kind, endpoint=hub.url, token=HUB_TOKEN,
                                            cache_dir=tmp_path / "dl"))
            files = [f for f in folder.rglob("*") if f.is_file()]
            assert {f.relative_to(folder).as_posix() for f in files} >= {"README.md", ".gitattributes"}
            pushed += files
        assert any(f.suffix == ".parquet" for f in pushed) and any(f.suffix == ".safetensors" for f in pushed)
        collection = json.dumps([c.__dict__ for c in api.list_collections(owner="leaker")], default=str)
        assert "Leak zoo" in collection and not [n for n in SECRETS.values() if n in collection]

    assert _leaks([home / "config.yaml"]) != []  # the search does find a secret where one is
    assert _leaks(pushed) == []
    stored = [f for f in home.rglob("*") if f.is_file() and f.name != "config.yaml"]
    assert any(f.name == "published.jsonl" for f in stored)
    assert _leaks(stored) == []
    # the hub's own storage (blobs of every commit, collections) holds no secret either
    assert _leaks([f for f in (tmp_path / "hub").rglob("*") if f.is_file()]) == []


def test_guard_refuses_a_row_holding_a_key(hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from factory.cli.main import cli
    from tests.helpers import write_jsonl

    monkeypatch.setenv("OPENAI_API_KEY", SECRETS["OPENAI_API_KEY"])
    rows = [{"instruction": "print my key", "response": f"your key is {SECRETS['OPENAI_API_KEY']}"}]
    runner, home = CliRunner(), tmp_path / ".factory"
    assert runner.invoke(cli, ["--home", str(home), "datasets", "import", str(write_jsonl(tmp_path / "r.jsonl", rows)),
                               "--name", "leaky"]).exit_code == 0
    result = runner.invoke(cli, ["--home", str(home), "publish", "leaky", "--repo", "testuser/leaky",
                                 "--token", "hf_test_token"])
    assert result.exit_code == 1
    assert "data/train-00000-of-00001.parquet contains $OPENAI_API_KEY" in result.output
    assert SECRETS["OPENAI_API_KEY"] not in result.output
    assert not HfApi(token="hf_test_token").repo_exists("testuser/leaky", repo_type="dataset")
