"""Render dataset and model cards from the Jinja templates here, through `huggingface_hub`'s card classes.

`dataset_card` / `model_card` build the YAML metadata with `DatasetCardData` / `ModelCardData` (eval results
become `model-index` through `EvalResult`) and fill `dataset.md.jinja` / `model.md.jinja` with
`DatasetCard.from_template` / `ModelCard.from_template`. The lineage and citation sections are partials
(`lineage.md.jinja`, `citations.md.jinja`) shared by both cards. `check_card` validates the metadata the way the
Hub and `datasets` read it, before anything is pushed.
"""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from factory.cards.licenses import HUB_LICENSES
from factory.records import REPO_ID

HERE = Path(__file__).parent
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@lru_cache(maxsize=1)
def _partials():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


def partial(name: str, **context: Any) -> str:
    return _partials().get_template(name).render(**context).strip()


def size_category(rows: int) -> str:
    """The Hub's `size_categories` bucket for a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if rows < bound), "n>1T" if rows > 10**12 else "1B<n<10B")


def eval_results(model_name: str, scores: dict[str, Any]) -> list[Any]:
    """`{benchmark: {metric: value}}` (what `factory eval` writes) as `EvalResult`s; non-numbers are skipped."""
    from huggingface_hub import EvalResult

    out = []
    for benchmark, metrics in sorted((scores or {}).items()):
        items = metrics.items() if isinstance(metrics, dict) else [("score", metrics)]
        for metric, value in sorted(items):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            out.append(EvalResult(task_type="text-generation", task_name="Text Generation",
                                  dataset_type=str(benchmark), dataset_name=str(benchmark),
                                  metric_type=str(metric), metric_name=str(metric), metric_value=float(value)))
    return out


def dataset_card(*, context: dict[str, Any], license: str, language: list[str], tags: list[str],
                 configs: list[dict[str, Any]], dataset_info: dict[str, Any]):
    """A `DatasetCard` whose YAML declares license, language, tags, size, `configs` and `dataset_info`."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(
        license=license, language=list(language), pretty_name=context["pretty_name"],
        size_categories=[size_category(context["rows"])], task_categories=["text-generation"],
        tags=list(tags), configs=configs, dataset_info=dataset_info,
    )
    return DatasetCard.from_template(data, template_path=str(HERE / "dataset.md.jinja"),
                                     lineage_md=partial("lineage.md.jinja", **context["lineage"], level="##"),
                                     citations_md=partial("citations.md.jinja", citations=context["citations"]),
                                     **context)


def model_card(*, context: dict[str, Any], license: str, language: list[str], tags: list[str],
               base_model: str | None, datasets: list[str], library_name: str, scores: dict[str, Any]):
    """A `ModelCard` with license, language, tags, base_model, datasets, pipeline_tag, library_name, model-index."""
    from huggingface_hub import ModelCard, ModelCardData

    results = eval_results(context["model_name"], scores)
    data = ModelCardData(
        license=license, language=list(language), tags=list(tags), base_model=base_model,
        datasets=list(datasets) or None, library_name=library_name, pipeline_tag="text-generation",
        model_name=context["model_name"], eval_results=results or None,
    )
    lineages = [{**d, "lineage_md": partial("lineage.md.jinja", **d["lineage"], level="####") if d["lineage"] else ""}
                for d in context["datasets"]]
    return ModelCard.from_template(data, template_path=str(HERE / "model.md.jinja"),
                                   citations_md=partial("citations.md.jinja", citations=context["citations"]),
                                   **{**context, "datasets": lineages})


def check_card(card: Any, files: list[str] | None = None) -> None:
    """Raise `ValueError` (one line) unless the card's metadata is what the Hub and `datasets` accept."""
    from huggingface_hub import DatasetCard, ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    reparsed = type(card)(str(card))  # the YAML header parses back to the same metadata
    meta = reparsed.data.to_dict()
    if meta != card.data.to_dict():
        raise ValueError("card metadata does not survive a YAML round trip")
    license_ = meta.get("license")
    if license_ not in HUB_LICENSES:
        raise ValueError(f"license {license_!r} is not a Hub license id (e.g. apache-2.0, mit, cc-by-4.0, other)")
    languages = meta.get("language") or []
    bad = [lang for lang in ([languages] if isinstance(languages, str) else languages) if not _LANG.match(lang)]
    if bad:
        raise ValueError(f"language {bad[0]!r} is not an ISO 639 code")
    if not all(isinstance(t, str) and t for t in meta.get("tags") or []):
        raise ValueError("tags must be non-empty strings")
    if isinstance(card, ModelCard):
        for key in ("base_model", "datasets"):
            values = meta.get(key) or []
            for v in [values] if isinstance(values, str) else values:
                if not REPO_ID.match(v):
                    raise ValueError(f"{key} {v!r} is not a Hub repo id")
        if meta.get("model-index"):
            model_index_to_eval_results(meta["model-index"])
    if isinstance(card, DatasetCard):
        from datasets.info import DatasetInfosDict
        from datasets.utils.metadata import MetadataConfigs

        configs = MetadataConfigs.from_dataset_card_data(reparsed.data)
        if not configs:
            raise ValueError("dataset card declares no configs")
        DatasetInfosDict.from_dataset_card_data(reparsed.data)  # features parse
        for name, config in configs.items():
            for entry in config.get("data_files") or []:
                patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
                if files is not None and not any(fnmatch.fnmatch(f, p) for p in patterns for f in files):
                    raise ValueError(f"config {name!r} split {entry['split']!r}: no file matches {patterns}")
