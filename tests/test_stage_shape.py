"""One stage shape: dedup, filters and converters are `Stage` subclasses run by the one executor, `run_stage`."""

from __future__ import annotations

import polars as pl
import pytest

from factory.config import StrictModel
from factory.errors import BadInput
from factory.pipeline.dedup import DedupConfig, DedupExact, DedupNear, DedupSemantic
from factory.pipeline.execute import run_stage
from factory.pipeline.filters import Filter, FilterConfig
from factory.pipeline.hh_rlhf import HHRLHF
from factory.pipeline.respond import Respond
from factory.pipeline.stage import Stage
from factory.pipeline.to_sft import ToSFT
from factory.store import Store
from factory.store.importer import import_dataset
from tests.helpers import write_jsonl

PIPELINE_STAGES = [DedupExact, DedupNear, DedupSemantic, Filter, ToSFT, HHRLHF, Respond]


@pytest.mark.parametrize("cls", PIPELINE_STAGES, ids=lambda c: c.name)
def test_every_pipeline_stage_has_the_one_shape(cls):
    assert issubclass(cls, Stage) and issubclass(cls.Config, StrictModel)
    d = cls.describe()
    assert d["name"] == cls.name and d["version"] == "1" and d["summary"]
    assert set(d["config"]) == set(cls.Config.model_fields)
    # the hooks the executor calls are the base class's, with defaults
    stage = cls()
    assert stage.manifest_extra() == {}
    assert isinstance(stage.recipe(), dict)


def _seed(tmp_path, rows):
    store = Store(tmp_path / "home")
    version, _ = import_dataset(store, str(write_jsonl(tmp_path / "s.jsonl", rows)), "s")
    return store, version


class Upper(Stage):
    """A whole-table stage made up for the test: upper-cases one column, drops empty rows."""

    name = "upper"
    whole_table = True

    def process_table(self, df: pl.DataFrame) -> pl.DataFrame:
        out = df.filter(pl.col("text") != "").with_columns(pl.col("text").str.to_uppercase())
        self.counters["dropped"] = df.height - out.height
        return out

    def manifest_extra(self):
        return {"upper": {"column": "text"}}


def test_the_executor_runs_whole_table_stages(tmp_path):
    store, source = _seed(tmp_path, [{"text": "a"}, {"text": ""}, {"text": "b"}])
    first = run_stage(store, Upper(), None, source, "up")
    assert not first.reused
    v = first.version
    assert v.read()["text"].to_list() == ["A", "B"]
    assert v.manifest.counters == {"kept": 2, "dropped": 1}
    assert v.manifest.stage.name == "upper" and v.manifest.inputs[0].version == source.version
    assert v.manifest.model_dump()["upper"] == {"column": "text"}
    again = run_stage(store, Upper(), None, source, "up")
    assert again.reused and again.version.version == v.version
    limited = run_stage(store, Upper(), None, source, "up", limit=1)  # a limit names a different version
    assert limited.version.version != v.version and limited.version.read()["text"].to_list() == ["A"]


def test_dedup_default_columns_are_bound_before_the_version_is_named(tmp_path):
    store, source = _seed(tmp_path, [{"prompt": "same"}, {"prompt": "Same!"}, {"prompt": "other"}])
    implicit = run_stage(store, DedupExact(), None, source, "d").version
    explicit = run_stage(store, DedupExact(DedupConfig(columns=["prompt"])), None, source, "d").version
    assert implicit.version == explicit.version and implicit.manifest.config["columns"] == ["prompt"]
    assert implicit.manifest.counters == {"kept": 2, "dropped": 1, "exact_duplicates": 1}


def test_filter_config_validates_in_pydantic():
    from factory.config import build_config

    assert FilterConfig(languages=["fr", "en"]).languages == ["en", "fr"]
    with pytest.raises(BadInput, match="--language 'xx': not one of en") as err:
        build_config(FilterConfig, languages=["xx"])
    assert "Value error" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(BadInput, match="threshold"):
        build_config(DedupNear.Config, threshold=1.5)

