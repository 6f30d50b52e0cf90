"""`factory datasets import` from every supported source, and its errors."""

from __future__ import annotations

import json

import polars as pl
import pytest

from factory.errors import BadInput
from factory.store import Store
from factory.store.importer import import_dataset
from tests.helpers import run_factory, write_jsonl

ROWS = [{"instruction": f"q{i}", "context": "", "response": f"a{i}", "category": "open_qa"} for i in range(6)]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "home")


def _rows(store, ref):
    return store.resolve(ref).read().to_dicts()


def test_jsonl_json_csv_parquet_text_give_the_same_rows(store, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", ROWS)
    (tmp_path / "b.json").write_text(json.dumps(ROWS))
    pl.DataFrame(ROWS).write_csv(tmp_path / "c.csv")
    pl.DataFrame(ROWS).write_parquet(tmp_path / "d.parquet")
    for name, file in [("a", "a.jsonl"), ("b", "b.json"), ("c", "c.csv"), ("d", "d.parquet")]:
        v, _ = import_dataset(store, str(tmp_path / file), name)
        assert v.manifest.rows == 6
        got = _rows(store, name)
        assert [r["instruction"] for r in got] == [r["instruction"] for r in ROWS], file
    (tmp_path / "topics.txt").write_text("Volcanoes\n\nSorting algorithms\n")
    v, _ = import_dataset(store, str(tmp_path / "topics.txt"), "topics")
    assert _rows(store, "topics") == [{"text": "Volcanoes"}, {"text": "Sorting algorithms"}]


def test_nested_messages_survive(store, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    v, _ = import_dataset(store, str(write_jsonl(tmp_path / "m.jsonl", rows)), "m")
    assert v.read().to_dicts() == rows
    assert v.to_hf()[0]["messages"][1]["content"] == "hello"


def test_save_to_disk_dir(store, tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "arrow"))
    v, _ = import_dataset(store, str(tmp_path / "arrow"), "arrow")
    assert v.manifest.rows == 6 and v.manifest.config["format"] == "arrow-dir"
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                               "test": datasets.Dataset.from_list(ROWS[:2])})
    dd.save_to_disk(str(tmp_path / "dd"))
    v, _ = import_dataset(store, str(tmp_path / "dd"), "dd", split="test")
    assert v.manifest.rows == 2
    with pytest.raises(BadInput, match="no split 'validation'"):
        import_dataset(store, str(tmp_path / "dd"), "dd", split="validation")


def test_hub_id_goes_through_datasets_and_fails_cleanly_offline(tmp_path):
    # The real `datasets` loading code runs, in offline mode, and its failure becomes one line.
    r = run_factory("datasets", "import", "someone/no-such-dataset", "--name", "hub", home=tmp_path / "home",
                    env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1
    assert r.stderr.startswith("error: cannot load Hub dataset 'someone/no-such-dataset'")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "home" / "datasets" / "hub").exists()


def test_map_renames_and_checks(store, tmp_path):
    src = write_jsonl(tmp_path / "q.jsonl", [{"question": "q", "answer": "a"}])
    v, _ = import_dataset(store, str(src), "q", mapping={"instruction": "question", "response": "answer"})
    assert v.manifest.columns == {"instruction": "String", "response": "String"}
    with pytest.raises(BadInput, match="--map: column 'nope' not in"):
        import_dataset(store, str(src), "q2", mapping={"x": "nope"})
    with pytest.raises(BadInput, match="lacks column instruction"):
        import_dataset(store, str(src), "q3", require=["instruction"])
    unmapped, _ = import_dataset(store, str(src), "q")
    assert unmapped.version != v.version  # the map is part of the recipe


@pytest.mark.parametrize("content,expected", [
    ('{"a": 1}\n{"a": 2\n', r":2: malformed JSON"),
    ('{"a": 1}\n\n[1, 2]\n', r":3: expected a JSON object"),
    ("", r"empty file"),
])
def test_malformed_jsonl_names_the_line(store, tmp_path, content, expected):
    src = tmp_path / "bad.jsonl"
    src.write_text(content)
    with pytest.raises(BadInput, match=expected):
        import_dataset(store, str(src), "bad")
    assert store.names() == []


def test_missing_and_unknown_files(store, tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        import_dataset(store, str(tmp_path / "missing.jsonl"), "x")
    (tmp_path / "data.xyz").write_text("?")
    with pytest.raises(BadInput, match="unknown file type"):
        import_dataset(store, str(tmp_path / "data.xyz"), "x")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(BadInput, match="cannot read as Parquet"):
        import_dataset(store, str(tmp_path / "bad.parquet"), "x")


def test_keys_that_first_appear_late_are_kept(store, tmp_path):
    rows = [{"a": i, "b": "x"} for i in range(500)] + [{"a": 500, "b": "y", "late": "kept"}]
    v, _ = import_dataset(store, str(write_jsonl(tmp_path / "late.jsonl", rows)), "late")
    df = v.read()
    assert "late" in df.columns and df["late"].to_list()[-1] == "kept" and df["late"].null_count() == 500
