"""Bad input and a flaky Hub: one clear line, a non-zero exit, no token in the output, no half-published version.

Server failures are scripted on the loopback Hub (`hub_server.faults`), so the real client sees real 5xx answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import HfApi

from factory.cli.main import cli
from factory.data import resolve_seed
from factory.store import Store
from factory.store.importer import import_dataset
from tests.test_publish_dataset import TOKEN

BOGUS = "hf_bogus_Zq81xTokenThatMustNotPrint"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACTORY_HUB_BACKOFF", "0.01")  # fast retries; the policy itself is unchanged
    monkeypatch.setenv("FACTORY_HUB_RETRIES", "3")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    h = tmp_path / ".factory"
    import_dataset(Store(h), resolve_seed("seeds:flan"), "flan-seed")
    return h


@pytest.fixture
def faults(hub_server):
    hub_server.faults.clear()
    yield hub_server.faults
    hub_server.faults.clear()


def publish(home: Path, *args: str):
    result = CliRunner().invoke(cli, ["--home", str(home), "publish", *args])
    return result, result.output


def one_error_line(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    return errors[0]


def checkpoint_dir(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(b"not really weights")
    (path / "factory.json").write_text(json.dumps({"kind": "checkpoint", "method": "sft", "base_model": "org/base",
                                                   "adapter": False, "datasets": []}))
    return path


def test_missing_and_invalid_token(hub_server, home: Path) -> None:
    result, out = publish(home, "flan-seed", "--repo", "testuser/no-token")
    assert result.exit_code == 2 and "no Hugging Face token" in one_error_line(out)

    result, out = publish(home, "flan-seed", "--repo", "testuser/bad-token", "--token", BOGUS)
    line = one_error_line(out)
    assert result.exit_code == 1 and "rejected --token (401 Unauthorized)" in line
    assert BOGUS not in out
    assert not HfApi(token=TOKEN).repo_exists("testuser/bad-token", repo_type="dataset")


@pytest.mark.parametrize("repo", ["no-namespace", "a/b/c", "testuser/bad name", "testuser/--dashes--", "x" * 40 + "/"])
def test_malformed_repo_ids(hub_server, home: Path, repo: str) -> None:
    result, out = publish(home, "flan-seed", "--repo", repo, "--token", TOKEN)
    assert result.exit_code == 2 and "repo" in one_error_line(out).lower()


def test_model_to_dataset_repo_and_type_collision(hub_server, home: Path, tmp_path: Path) -> None:
    ckpt = checkpoint_dir(tmp_path / "ckpt")
    result, out = publish(home, str(ckpt), "--repo", "datasets/testuser/ckpt-here", "--token", TOKEN)
    assert result.exit_code == 2 and "pushing a model to a dataset repo" in one_error_line(out)

    assert publish(home, "flan-seed", "--repo", "testuser/taken-name", "--token", TOKEN)[0].exit_code == 0
    result, out = publish(home, str(ckpt), "--repo", "testuser/taken-name", "--token", TOKEN)
    assert result.exit_code == 2 and "name collision" in one_error_line(out)
    assert not HfApi(token=TOKEN).repo_exists("testuser/taken-name", repo_type="model")


def test_bad_checkpoint_dirs_and_refs(hub_server, home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result, out = publish(home, str(empty), "--repo", "testuser/x", "--token", TOKEN)
    assert result.exit_code == 2 and "neither a checkpoint" in one_error_line(out)
    ckpt = checkpoint_dir(tmp_path / "ckpt")
    (ckpt / "model.safetensors").unlink()
    result, out = publish(home, str(ckpt), "--repo", "testuser/x", "--token", TOKEN)
    assert result.exit_code == 2 and "nothing loadable" in one_error_line(out)
    result, out = publish(home, "no-such-dataset", "--repo", "testuser/x", "--token", TOKEN)
    assert result.exit_code == 2 and "unknown dataset" in one_error_line(out)
    result, out = publish(home, "flan-seed", "--repo", "testuser/x", "--license", "made-up", "--dry-run")
    assert result.exit_code == 2 and "license 'made-up'" in one_error_line(out)


def test_private_flag_on_existing_public_repo(hub_server, home: Path) -> None:
    assert publish(home, "flan-seed", "--repo", "testuser/was-public", "--token", TOKEN)[0].exit_code == 0
    result, out = publish(home, "flan-seed", "--repo", "testuser/was-public", "--private", "--token", TOKEN)
    assert result.exit_code == 2 and "exists and is public" in one_error_line(out)


def test_5xx_retried_then_published(hub_server, home: Path, faults) -> None:
    faults.add(503, method="POST", path=r"/commit/", times=2)
    faults.add(502, method="POST", path=r"/tag/", times=1)
    result, out = publish(home, "flan-seed", "--repo", "testuser/flaky", "--token", TOKEN)
    assert result.exit_code == 0, out
    assert [status for _, _, status in faults.hits] == [503, 503, 502]
    api = HfApi(token=TOKEN)
    assert "data/train-00000-of-00001.parquet" in api.list_repo_files("testuser/flaky", repo_type="dataset")
    assert len(api.list_repo_refs("testuser/flaky", repo_type="dataset").tags) == 1


def test_5xx_until_giving_up_publishes_nothing(hub_server, home: Path, faults) -> None:
    api, repo = HfApi(token=TOKEN), "testuser/down"
    faults.add(500, method="POST", path=r"/commit/", times=100)
    result, out = publish(home, "flan-seed", "--repo", repo, "--token", TOKEN)
    line = one_error_line(out)
    assert result.exit_code == 1 and "HTTP 500" in line and "3 times" in line and "nothing was published" in line
    assert len(faults.hits) == 3
    assert api.list_repo_files(repo, repo_type="dataset") == [".gitattributes"]  # no half version
    assert api.list_repo_refs(repo, repo_type="dataset").tags == []

    faults.clear()
    assert publish(home, "flan-seed", "--repo", repo, "--token", TOKEN)[0].exit_code == 0
    assert len(api.list_repo_refs(repo, repo_type="dataset").tags) == 1


def test_commit_whose_answer_was_lost(hub_server, home: Path, faults) -> None:
    """The commit lands but its answer is a 500: the retry must not commit twice."""
    api, repo = HfApi(token=TOKEN), "testuser/lost-answer"
    faults.add(500, method="POST", path=r"/commit/", times=1, after=True)
    result, out = publish(home, "flan-seed", "--repo", repo, "--token", TOKEN)
    assert result.exit_code == 0, out
    assert len(faults.hits) == 1
    titles = [c.title for c in api.list_repo_commits(repo, repo_type="dataset")]
    assert len(titles) == 2 and titles[1] == "initial commit"


def test_tag_failure_after_commit_says_what_landed(hub_server, home: Path, faults) -> None:
    faults.add(503, method="POST", path=r"/tag/", times=100)
    result, out = publish(home, "flan-seed", "--repo", "testuser/untagged", "--token", TOKEN)
    line = one_error_line(out)
    assert result.exit_code == 1 and "but could not tag it" in line and "rerun" in line
    faults.clear()
    result, out = publish(home, "flan-seed", "--repo", "testuser/untagged", "--token", TOKEN)
    assert result.exit_code == 0 and "no new commit" in out and "tagged" in out


def test_unreachable_hub_is_retried_then_one_line(home: Path) -> None:
    import socket

    from factory.errors import FactoryError
    from factory.publish.dataset import PublishOptions, plan_dataset
    from factory.publish.publisher import execute

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    plan, _ = plan_dataset(Store(home), "flan-seed", PublishOptions(repo="testuser/unreachable"))
    with pytest.raises(FactoryError) as exc:
        execute(plan, home=home, token=TOKEN, hub_endpoint=dead)
    message = str(exc.value)
    assert f"the Hub at {dead} failed to check the token" in message and "3 times" in message
    assert "nothing was published" in message and TOKEN not in message
