"""The versioned store: hashing, atomic writes, references, manifests, removal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest

from factory.errors import BadInput, FactoryError
from factory.store import Cost, InputRef, StageInfo, Store, version_id
from factory.store.importer import import_dataset
from tests.helpers import write_jsonl

STAGE = StageInfo(kind="test", name="t", version="1")
ROWS = [{"id": str(i), "instruction": f"q{i}", "response": f"a{i}"} for i in range(10)]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "home")


def test_version_id_depends_on_every_ingredient():
    base = version_id(STAGE, {"n": 1}, [InputRef(name="a", version="1")], {"p.txt": "hello"})
    assert base == version_id(STAGE, {"n": 1}, [InputRef(name="a", version="1")], {"p.txt": "hello"})
    assert len(base) == 12 and all(c in "0123456789abcdef" for c in base)
    variants = [
        version_id(StageInfo(kind="test", name="t", version="2"), {"n": 1}, [InputRef(name="a", version="1")],
                   {"p.txt": "hello"}),
        version_id(STAGE, {"n": 2}, [InputRef(name="a", version="1")], {"p.txt": "hello"}),
        version_id(STAGE, {"n": 1}, [InputRef(name="a", version="2")], {"p.txt": "hello"}),
        version_id(STAGE, {"n": 1}, [InputRef(name="a", version="1")], {"p.txt": "hello!"}),
    ]
    assert base not in variants and len(set(variants)) == 4
    assert version_id(STAGE, {"max_tokens": 96}, []) != version_id(STAGE, {"max_tokens": 128}, [])


def test_secrets_do_not_change_the_id_and_never_reach_the_manifest(store):
    a = version_id(STAGE, {"api_key": "sk-one", "n": 1}, [])
    b = version_id(STAGE, {"api_key": "sk-two", "n": 1}, [])
    assert a == b
    with store.writer("x", stage=STAGE, config={"api_key": "sk-secret-value", "nested": {"hf_token": "hf_abc"}}) as w:
        w.write(ROWS)
        v = w.commit()
    text = (v.path / "manifest.json").read_text()
    assert "sk-secret-value" not in text and "hf_abc" not in text
    assert v.manifest.config["api_key"] == "***"


def test_write_read_roundtrip_and_manifest_keys(store):
    with store.writer("sft", stage=STAGE, config={"n": 10}, inputs=[InputRef(name="seed", version="abc")]) as w:
        w.write(ROWS[:4])
        w.write(pl.DataFrame(ROWS[4:]))
        v = w.commit(counters={"kept": 10, "dropped": 0, "failed": 0},
                     cost=Cost(requests=10, prompt_tokens=100, completion_tokens=50, usd=0.01))
    raw = json.loads((v.path / "manifest.json").read_text())
    for key in ("name", "version", "created", "stage", "config", "inputs", "rows", "columns", "counters", "cost",
                "factory_version"):
        assert key in raw, key
    assert raw["stage"] == {"kind": "test", "name": "t", "version": "1"}
    assert raw["inputs"] == [{"name": "seed", "version": "abc"}]
    assert raw["rows"] == 10 and raw["columns"] == {"id": "String", "instruction": "String", "response": "String"}
    assert raw["cost"] == {"requests": 10, "prompt_tokens": 100, "completion_tokens": 50, "usd": 0.01}
    files = v.files()
    assert [f.name for f in files] == ["train-00000-of-00001.parquet"]
    assert pl.read_parquet(files[0]).to_dicts() == ROWS
    # the datasets library reads the shards as they are
    ds = v.to_hf()
    assert ds.num_rows == 10 and ds[3]["instruction"] == "q3"


def test_large_data_is_sharded_and_reads_back_whole(store):
    rows = [{"id": i, "text": "x" * 200} for i in range(5000)]
    with store.writer("big", stage=STAGE, config={}, shard_bytes=200_000) as w:
        for i in range(0, 5000, 1000):
            w.write(rows[i:i + 1000])
        v = w.commit()
    files = v.files()
    assert len(files) > 2
    assert files[0].name.endswith(f"-of-{len(files):05d}.parquet")
    assert sum(f.rows for f in v.manifest.files) == 5000
    assert v.read()["id"].to_list() == list(range(5000))


def test_failed_write_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.writer("x", stage=STAGE, config={}, shard_bytes=20) as w:
            w.write(ROWS)  # flushed to a temp shard
            assert w.tmp_dir is not None and w.tmp_dir.exists()
            raise RuntimeError("crash")
    assert store.versions("x") == []
    assert list((store.datasets_dir / "x").iterdir()) == []


def test_crashed_writer_process_is_invisible_and_swept(store, tmp_path):
    code = f"""
import os
from factory.store import Store, StageInfo
s = Store({str(store.home)!r})
w = s.writer("x", stage=StageInfo(kind="t", name="t", version="1"), config={{}}, shard_bytes=10)
w.write([{{"a": i}} for i in range(100)])
os._exit(9)  # dies before commit, like kill -9
"""
    subprocess.run([sys.executable, "-c", code], check=False)
    left = list((store.datasets_dir / "x").glob(".tmp-*"))
    assert left, "the dead writer should have left its temp dir behind"
    assert store.versions("x") == [] and store.names() == ["x"]
    with pytest.raises(FactoryError):
        store.resolve("x")
    with store.writer("x", stage=STAGE, config={}) as w:
        w.write(ROWS)
        w.commit()
    assert not list((store.datasets_dir / "x").glob(".tmp-*"))
    assert store.resolve("x").manifest.rows == 10


def test_same_recipe_is_the_same_version(store):
    with store.writer("x", stage=STAGE, config={"a": 1}) as w:
        w.write(ROWS)
        v1 = w.commit()
    w2 = store.writer("x", stage=STAGE, config={"a": 1})
    assert w2.exists and w2.existing.version == v1.version


def test_references(store, tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", ROWS)
    v1, created = import_dataset(store, str(src), "s")
    assert created
    write_jsonl(src, ROWS[:5])
    v2, _ = import_dataset(store, str(src), "s")
    assert v1.version != v2.version
    assert store.resolve("s").version == v2.version
    assert store.resolve(f"s@{v1.version}").version == v1.version
    assert store.resolve(f"s@{v1.version[:6]}").version == v1.version
    assert store.resolve(str(v1.path)).version == v1.version
    with pytest.raises(FactoryError, match="no version"):
        store.resolve("s@ffffffffffff")
    with pytest.raises(BadInput, match="hex"):
        store.resolve("s@zzz")
    with pytest.raises(FactoryError, match="unknown dataset 'nope'"):
        store.resolve("nope")
    with pytest.raises(BadInput, match="invalid dataset name"):
        store.resolve("../etc@abc")
    with pytest.raises(FactoryError, match="not a dataset version directory"):
        store.resolve("../etc")
    # an ambiguous prefix: the empty-hex prefix of a single char may match both
    common = os.path.commonprefix([v1.version, v2.version])
    if common:
        with pytest.raises(BadInput, match="ambiguous"):
            store.resolve(f"s@{common}")


def test_reimport_same_file_is_a_noop(store, tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", ROWS)
    v1, created1 = import_dataset(store, str(src), "s")
    mtime = (v1.path / "manifest.json").stat().st_mtime_ns
    v2, created2 = import_dataset(store, str(src), "s")
    assert (created1, created2) == (True, False)
    assert v1.version == v2.version
    assert (v2.path / "manifest.json").stat().st_mtime_ns == mtime


def test_remove_refuses_while_depended_on(store, tmp_path):
    base, _ = import_dataset(store, str(write_jsonl(tmp_path / "s.jsonl", ROWS)), "s")
    with store.writer("child", stage=STAGE, config={}, inputs=[InputRef(name="s", version=base.version)]) as w:
        w.write(ROWS[:2])
        child = w.commit()
    with pytest.raises(FactoryError, match="input of child@"):
        store.remove(base)
    assert store.resolve("s").version == base.version
    store.remove(child)
    store.remove(base)
    assert store.names() == []


def test_remove_moves_latest_back(store, tmp_path):
    src = tmp_path / "s.jsonl"
    v1, _ = import_dataset(store, str(write_jsonl(src, ROWS)), "s")
    v2, _ = import_dataset(store, str(write_jsonl(src, ROWS[:3])), "s")
    store.remove(v2)
    assert store.resolve("s").version == v1.version


def test_not_a_store(tmp_path):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file.txt").write_text("hi")
    with pytest.raises(BadInput, match="not a factory store"):
        Store(tmp_path / "stuff")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInput, match="not a directory"):
        Store(tmp_path / "afile")
