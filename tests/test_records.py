"""The shared records: `factory.json` as `CheckpointRecord` (the format docs/training.md specifies), `Paper`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.errors import BadInput
from factory.records import FACTORY_JSON, CheckpointRecord, Paper, record_eval

DOCUMENTED = ["kind", "method", "base_model", "adapter", "datasets", "config", "config_hash", "metrics", "versions",
              "stages", "created", "eval"]


def test_trainers_write_what_publish_reads(tmp_path: Path) -> None:
    from factory.trainers.checkpoint import record

    doc = record(method="sft", base_model="org/base", adapter=True, datasets=[{"name": "d", "version": "abc"}],
                 config={"openai_api_key": "sk-secret", "lr": 1e-4}, config_hash="0123456789ab",
                 metrics={"train_loss": float("nan"), "steps": 3}, tuning="lora")
    doc.write(tmp_path)
    raw = json.loads((tmp_path / FACTORY_JSON).read_text())
    assert list(raw) == [*DOCUMENTED, "tuning"]  # the documented keys in order; unset optional keys left out
    assert raw["config"]["openai_api_key"] == "***" and raw["metrics"]["train_loss"] is None
    assert raw["datasets"] == [{"name": "d", "version": "abc"}] and raw["eval"] == {} and raw["versions"]["trl"]
    back = CheckpointRecord.read(tmp_path)
    assert back == doc.model_copy(update={"metrics": {"train_loss": None, "steps": 3}})
    assert back.datasets[0].ref() == "d@abc" and back.tuning == "lora"


def test_unknown_keys_survive_and_eval_merges(tmp_path: Path) -> None:
    (tmp_path / FACTORY_JSON).write_text(json.dumps({"kind": "checkpoint", "method": "dpo", "base_model": "m",
                                                     "adapter": False, "future_key": [1, 2], "eval": {"a": 1}}))
    doc = CheckpointRecord.read(tmp_path)
    assert doc.model_extra == {"future_key": [1, 2]}
    doc.write(tmp_path)
    record_eval(tmp_path, {"mt-bench": {"score": 5.0}})
    raw = json.loads((tmp_path / FACTORY_JSON).read_text())
    assert raw["future_key"] == [1, 2] and raw["eval"] == {"a": 1, "mt-bench": {"score": 5.0}}
    assert CheckpointRecord.find(tmp_path / "nowhere") is None


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "is not readable JSON"),
    (json.dumps({"kind": "model", "method": "sft"}), "kind must be 'checkpoint'"),
    (json.dumps({"kind": "checkpoint", "method": "sft"}), "lacks base_model, adapter"),
    (json.dumps({"kind": "checkpoint", "method": "sft", "base_model": "m", "adapter": False,
                 "datasets": [{"name": "d"}]}), "datasets.0.version"),
])
def test_a_bad_record_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / FACTORY_JSON).write_text(text)
    with pytest.raises(BadInput, match=message) as err:
        CheckpointRecord.read(tmp_path)
    assert str(tmp_path / FACTORY_JSON) in str(err.value) and "\n" not in str(err.value)


def test_paper_from_a_manifest_or_a_plugin() -> None:
    class Legacy:  # a plugin's own paper class with the same attributes
        title, url, year = "T", "https://arxiv.org/abs/2401.01335", 2024

    assert Paper.coerce(None) is None and Paper.coerce({"url": "no title"}) is None
    got = Paper.coerce(Legacy())
    assert got == Paper(title="T", url="https://arxiv.org/abs/2401.01335", year=2024)
    assert Paper.coerce({"title": "T", "url": got.url, "year": 2024}) == got and Paper.coerce(got) is got
    keyed = got.with_key("spin-scheme@1")
    assert keyed.key == "spinscheme1" and keyed.with_key("other") is keyed
    assert keyed.as_dict()["bibtex"].startswith("@misc{spinscheme1,")
    assert "eprint = {2401.01335}" in keyed.make_bibtex()
