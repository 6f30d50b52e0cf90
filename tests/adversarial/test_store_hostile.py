"""The store under damage and hostile arguments, through the real CLI: a damaged version is an error, never an
empty success; one corrupt manifest does not hide the others; `rm` deletes nothing outside this store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import Store
from tests.helpers import write_jsonl


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    write_jsonl(tmp_path / "a.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}])
    for name in ("alpha", "beta"):
        assert invoke(home, "datasets", "import", str(tmp_path / "a.jsonl"), "--name", name).exit_code == 0
    return home


def _shards(home, name):
    return Store(home).latest(name).files()


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_damaged_shards_are_an_error_on_read_and_export(home, tmp_path, damage: str) -> None:
    shard = _shards(home, "alpha")[0]
    if damage == "missing":
        shard.unlink()
    elif damage == "garbage":
        shard.write_bytes(b"not parquet at all")
    else:
        shard.write_bytes(shard.read_bytes()[:40])
    for args in (("datasets", "export", "alpha", "-o", str(tmp_path / "out.jsonl")), ("datasets", "show", "alpha")):
        result = invoke(home, *args)
        assert result.exit_code != 0, result.output
        assert "damaged" in result.output and "Traceback" not in result.output
    if damage == "missing":
        assert "manifest says 2 rows, found 0" in invoke(home, "datasets", "show", "alpha").output
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").stat().st_size == 0


def test_one_corrupt_manifest_does_not_break_the_listing(home, caplog) -> None:
    manifest = Store(home).latest("alpha").path / "manifest.json"
    manifest.write_text("{ not json")
    result = invoke(home, "datasets", "list")
    assert result.exit_code == 0 and "beta" in result.output
    assert str(manifest) in caplog.text or str(manifest.parent) in caplog.text
    direct = invoke(home, "datasets", "show", f"alpha@{manifest.parent.name}")
    assert direct.exit_code != 0 and "Traceback" not in direct.output


def test_rm_refuses_versions_outside_this_store(home, tmp_path) -> None:
    other = tmp_path / "other"
    write_jsonl(tmp_path / "b.jsonl", [{"instruction": "x"}])
    assert invoke(other, "datasets", "import", str(tmp_path / "b.jsonl"), "--name", "alpha").exit_code == 0
    outside = Store(other).latest("alpha").path
    for extra in ((), ("--all",), ("--force",)):
        result = invoke(home, "datasets", "rm", str(outside), *extra)
        assert result.exit_code == 2 and "not in this store" in result.output
    assert outside.is_dir() and Store(home).latest("alpha") is not None


@pytest.mark.parametrize("name", ["bad\n", "x\x00y", "a\tb", "../x", "x" * 200, "a/b", ".."], ids=repr)
def test_control_characters_and_paths_in_names_are_refused(home, tmp_path, name: str) -> None:
    write_jsonl(tmp_path / "c.jsonl", [{"instruction": "x"}])
    result = invoke(home, "datasets", "import", str(tmp_path / "c.jsonl"), "--name", name)
    assert result.exit_code == 2 and "invalid dataset name" in result.output
    assert sorted(Store(home).names()) == ["alpha", "beta"]


def test_binary_and_non_utf8_inputs_are_one_line_errors(home, tmp_path) -> None:
    for ext, content in ((".jsonl", b"\xff\xfe\x00\x01"), (".json", b"\x80abc"), (".txt", b"\xff\xfe")):
        path = tmp_path / f"bin{ext}"
        path.write_bytes(content)
        result = invoke(home, "datasets", "import", str(path), "--name", "binary")
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    bad_config = tmp_path / "cfg.yaml"
    bad_config.write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    result = invoke(home, "build", "evol-instruct", "--from", "alpha", "--config", str(bad_config), "--dry-run")
    assert result.exit_code == 2 and "not UTF-8" in result.output, result.output
    assert json.dumps(Store(home).names()) == '["alpha", "beta"]'
