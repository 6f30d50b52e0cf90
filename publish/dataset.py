"""Plan the publish of a dataset version: its Parquet shards under `data/`, and a dataset card with lineage.

The card's YAML declares `configs` (split `train` = `data/train-*`) and `dataset_info` (features and split
sizes, written with `datasets`' own helpers), so `datasets.load_dataset(repo)` loads the shards with the
right split and types; the repo gets a git tag equal to the version id, so users can pin it.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from factory import __version__
from factory.config import StrictModel
from factory.errors import BadInput
from factory.publish import lineage as lineage_mod
from factory.publish.decontam import DecontamConfig, DecontamReport, check_version
from factory.publish.papers import citations_for
from factory.publish.plan import Plan, PlanFile, parse_repo
from factory.store import DatasetVersion, Store


class PublishOptions(StrictModel):
    """What `factory publish` takes besides the thing to publish (also a recipe's publish stage config)."""

    repo: str
    private: bool = False
    revision: str = "main"
    tag: str | None = None
    collection: str | None = Field(None, description="add the repo to this Hub collection (title or slug)")
    license: str = "apache-2.0"
    language: list[str] = Field(default_factory=lambda: ["en"])
    message: str | None = Field(None, description="commit message")
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)


def hub_features(version: DatasetVersion) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(`configs`, `dataset_info`) YAML for the card, from the shards' Arrow schema, via `datasets`' helpers."""
    import pyarrow.parquet as pq
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    files = version.checked_files()
    features = Features.from_arrow_schema(pq.read_schema(files[0]))
    metas = [pq.ParquetFile(f).metadata for f in files]
    num_bytes = sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups))
    rows = sum(m.num_rows for m in metas)
    info = DatasetInfo(features=features, splits=SplitDict({"train": SplitInfo("train", num_bytes, rows)}),
                       download_size=sum(f.stat().st_size for f in files), dataset_size=num_bytes)
    data = DatasetCardData()
    DatasetInfosDict({"default": info}).to_dataset_card_data(data)
    MetadataConfigs({"default": {"data_files": [{"split": "train", "path": "data/train-*"}]}}).to_dataset_card_data(
        data)
    return data["configs"], data["dataset_info"]


def card_context(store: Store, version: DatasetVersion, repo_id: str, decontam: DecontamReport,
                 papers: lineage_mod.PaperLookup | None) -> dict[str, Any]:
    m = version.manifest
    nodes = lineage_mod.walk(store, version, papers)
    summary = lineage_mod.summarize(nodes)
    citations = citations_for(lineage_mod.stage_papers(nodes))
    return {
        "pretty_name": m.name, "repo_id": repo_id, "name": m.name, "version": m.version, "ref": m.ref(),
        "rows": m.rows, "created": m.created, "factory_version": m.factory_version or __version__,
        "stage_label": m.stage.label(), "teacher": ", ".join(summary["teachers"]),
        "description": (f"{m.rows} rows made by the `{m.stage.label()}` stage of factory, a dataset factory "
                        "and model-zoo publisher; every step below is read from the manifests it recorded."),
        "columns": [{"name": k, "type": v} for k, v in m.columns.items()],
        "lineage": {"nodes": nodes, "summary": summary},
        "decontam": decontam.as_dict(), "citations": [c.as_dict() for c in citations],
    }


def plan_dataset(store: Store, ref: str, options: PublishOptions,
                 papers: lineage_mod.PaperLookup | None = None) -> tuple[Plan, DecontamReport]:
    """The plan for publishing `ref` (and the decontamination report; the caller enforces it)."""
    from factory.cards.render import check_card, dataset_card

    repo_id = parse_repo(options.repo, "dataset")
    version = store.resolve(ref)
    files = version.checked_files()
    if not files or version.manifest.rows == 0:
        raise BadInput(f"nothing to publish: {version.ref} has no rows")
    report = check_version(version, options.decontam, store)
    context = card_context(store, version, repo_id, report, papers)
    configs, dataset_info = hub_features(version)
    m = version.manifest
    tags = ["factory", "synthetic" if m.stage.kind != "import" else "seed-data",
            *sorted({n["stage"] for n in context["lineage"]["nodes"] if not n["missing"] and n["kind"] != "import"})]
    card = dataset_card(context=context, license=options.license, language=options.language, tags=tags,
                        configs=configs, dataset_info=dataset_info)
    plan_files = [PlanFile(f"data/{f.name}", f) for f in files]
    try:
        check_card(card, [f.path_in_repo for f in plan_files])
    except ValueError as exc:
        raise BadInput(f"dataset card: {exc}") from None
    cost = m.cost
    note = f"{m.ref()}: {m.rows} rows, {m.stage.label()}"
    if report.checked:
        note += f"; {report.contaminated} rows overlap benchmarks ({report.ngram}-grams)"
    plan = Plan(
        kind="dataset", repo_id=repo_id, what=m.ref(), files=plan_files, card=str(card),
        revision=options.revision, private=options.private,
        tags=[m.version, *([options.tag] if options.tag and options.tag != m.version else [])],
        stale=["data/*"], commit_message=options.message or f"factory: publish {m.ref()} ({m.rows} rows)",
        collection=options.collection, note=note,
        record={"kind": "dataset", "name": m.name, "version": m.version, "rows": m.rows,
                "stage": m.stage.label(), "lineage": [n["ref"] for n in context["lineage"]["nodes"]],
                "cost_usd": cost.usd, "decontamination": {k: v for k, v in report.as_dict().items() if k != "hits"}},
    )
    return plan, report
