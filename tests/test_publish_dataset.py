"""`factory publish` of dataset versions, through the real `huggingface_hub` client and `datasets.load_dataset`,
against the loopback Hub (`hub_server`, on the HF_ENDPOINT that conftest sets before anything imports the client).

`build_store` makes a small real lineage with the store's own writer: dolly seeds → an evol-instruct generation
(teacher, cost) → a judge (rubric, kept/dropped) → a dedup; the other publish tests reuse it.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from huggingface_hub import DatasetCard, HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from factory.data import resolve_seed
from factory.store import Cost, InputRef, StageInfo, Store
from factory.store.importer import import_dataset
from tests.helpers import run_factory

TOKEN, OTHER = "hf_test_token", "hf_other_token"
JUDGE_PAPER = {"title": "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena",
               "url": "https://arxiv.org/abs/2306.05685", "authors": "Lianmin Zheng and others", "year": 2023}


def _messages(instruction: str, response: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]


def build_store(home: Path) -> dict[str, str]:
    """dolly seeds → evol (scheme) → judged (judge) → dedup, written with the store's writer; returns refs."""
    store = Store(home)
    seed, _ = import_dataset(store, resolve_seed("seeds:dolly"), "dolly-seed")
    # leave out the two dolly rows that overlap the shipped benchmark prompts: this lineage is clean
    rows = seed.read().filter(~pl.col("id").is_in(["dolly-seed-0002", "dolly-seed-0058"])).head(40)
    evol_rows = pl.DataFrame([
        {"id": f"evol-{i:03d}", "instruction": f"In depth: {r['instruction']}", "input": r["context"],
         "response": r["response"], "messages": _messages(f"In depth: {r['instruction']}", r["response"]),
         "scheme": "evol-instruct", "model": "openai:gpt-4", "seed_id": r["id"]}
        for i, r in enumerate(rows.iter_rows(named=True))])
    with store.writer("evol", stage=StageInfo(kind="scheme", name="evol-instruct", version="1"),
                      config={"llm": "openai:gpt-4", "temperature": 0.7, "api_key": "sk-never-in-a-card"},
                      inputs=[InputRef(name=seed.name, version=seed.version)]) as w:
        w.write(evol_rows)
        evol = w.commit(counters={"kept": 40, "dropped": 0, "failed": 0},
                        cost=Cost(requests=40, prompt_tokens=12000, completion_tokens=8000, usd=0.84),
                        extra={"llm": {"spec": "openai:gpt-4", "retries": 1}})
    judged_rows = evol_rows.head(30).with_columns(judge_score=pl.lit(8.0), judge_model=pl.lit("anthropic:claude-2.1"))
    with store.writer("evol-judged", stage=StageInfo(kind="judge", name="gpt4-rubric", version="2"),
                      config={"llm": "anthropic:claude-2.1", "rubric": "helpfulness-1to10", "min_score": 7},
                      inputs=[InputRef(name=evol.name, version=evol.version)]) as w:
        w.write(judged_rows)
        judged = w.commit(counters={"kept": 30, "dropped": 10, "failed": 0},
                          cost=Cost(requests=40, prompt_tokens=9000, completion_tokens=2000, usd=0.31),
                          extra={"llm": {"spec": "anthropic:claude-2.1", "retries": 0}, "paper": JUDGE_PAPER})
    with store.writer("evol-clean", stage=StageInfo(kind="filter", name="dedup", version="1"),
                      config={"method": "minhash", "threshold": 0.9},
                      inputs=[InputRef(name=judged.name, version=judged.version)]) as w:
        w.write(judged_rows.head(28))
        clean = w.commit(counters={"kept": 28, "duplicates": 2})
    return {"seed": seed.ref, "evol": evol.ref, "judged": judged.ref, "clean": clean.ref,
            "clean_version": clean.version}


@pytest.fixture(scope="module")
def lineage_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("publish-home") / ".factory"
    return home, build_store(home)


@pytest.fixture
def offline_datasets(monkeypatch: pytest.MonkeyPatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", False)  # no S3 ping
    monkeypatch.setattr(datasets.config, "USE_PARQUET_EXPORT", False)  # no datasets-server host
    return datasets


def _rows(ds) -> list[dict]:
    return [dict(r) for r in ds]


def test_publish_load_pin_and_republish(hub_server, lineage_home, offline_datasets) -> None:
    home, refs = lineage_home
    store, api, repo = Store(home), HfApi(token=TOKEN), "testuser/evol-clean"
    first = run_factory("publish", refs["clean"], "--repo", repo, home=home, env={"HF_TOKEN": TOKEN})
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"{hub_server.url}/datasets/{repo}"
    assert f"published {refs['clean']}" in first.stderr

    expected = store.resolve(refs["clean"]).read()
    ds = offline_datasets.load_dataset(repo)
    assert list(ds) == ["train"] and ds["train"].column_names == expected.columns
    assert _rows(ds["train"]) == expected.to_dicts()
    assert api.list_repo_files(repo, repo_type="dataset") == [
        ".gitattributes", "README.md", "data/train-00000-of-00001.parquet"]

    # republish: no new commit, and it says so
    commits = len(api.list_repo_commits(repo, repo_type="dataset"))
    again = run_factory("publish", refs["clean"], "--repo", repo, home=home, env={"HF_TOKEN": TOKEN})
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stderr and "no new commit" in again.stderr
    assert len(api.list_repo_commits(repo, repo_type="dataset")) == commits

    # an unchanged republish that adds the repo to a collection: the zoo shows the shelf, and keeps showing it
    shelved = run_factory("publish", refs["clean"], "--repo", repo, "--collection", "Evol shelf", home=home,
                          env={"HF_TOKEN": TOKEN})
    assert shelved.returncode == 0 and "unchanged" in shelved.stderr, shelved.stderr
    assert len(api.list_repo_commits(repo, repo_type="dataset")) == commits
    for _ in range(2):  # after the shelving publish, and after one more without --collection
        listed = run_factory("zoo", "list", home=home).stdout
        row = next(line for line in listed.splitlines() if repo in line)
        assert row.rstrip().endswith("Evol shelf"), listed
        run_factory("publish", refs["clean"], "--repo", repo, home=home, env={"HF_TOKEN": TOKEN})

    # a second version replaces the data; the first stays loadable by its tag
    judged = store.resolve(refs["judged"])
    from click.testing import CliRunner

    from factory.cli.main import cli

    result = CliRunner().invoke(cli, ["--home", str(home), "publish", refs["judged"], "--repo", repo,
                                      "--token", TOKEN, "--tag", "v2"])
    assert result.exit_code == 0, result.output
    tags = {t.name for t in api.list_repo_refs(repo, repo_type="dataset").tags}
    assert tags == {refs["clean_version"], judged.version, "v2"}
    assert _rows(offline_datasets.load_dataset(repo, split="train")) == judged.read().to_dicts()
    pinned = offline_datasets.load_dataset(repo, split="train", revision=refs["clean_version"])
    assert _rows(pinned) == expected.to_dicts()
    assert len(api.list_repo_commits(repo, repo_type="dataset")) == commits + 1  # one atomic commit per publish


def test_card_metadata_and_lineage(hub_server, lineage_home) -> None:
    from factory.cards.render import check_card

    home, refs = lineage_home
    repo = "testorg/evol-judged-card"
    result = run_factory("publish", refs["clean"], "--repo", repo, "--benchmarks", "seeds:benchmark_prompts",
                         "--license", "cc-by-4.0", home=home, env={"HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    assert "decontamination: 0 of 28 rows" in result.stderr

    card = DatasetCard.load(repo, repo_type="dataset", token=TOKEN)
    card.validate()  # the Hub's validate-yaml endpoint
    check_card(card, HfApi(token=TOKEN).list_repo_files(repo, repo_type="dataset"))
    data = card.data.to_dict()
    assert data["license"] == "cc-by-4.0" and data["language"] == ["en"] and data["size_categories"] == ["n<1K"]
    assert {"factory", "synthetic", "evol-instruct", "gpt4-rubric", "dedup"} <= set(data["tags"])
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    features = {f["name"]: f for f in data["dataset_info"]["features"]}
    assert set(features) == set(Store(home).resolve(refs["clean"]).manifest.columns)
    assert features["messages"]["large_list"] == [{"name": "role", "dtype": "large_string"},
                                            {"name": "content", "dtype": "large_string"}]
    assert data["dataset_info"]["splits"] == [{"name": "train", "num_bytes": data["dataset_info"]["dataset_size"],
                                               "num_examples": 28}]

    text = card.text
    for expected in (refs["seed"], refs["evol"], refs["judged"], refs["clean"], "dolly.jsonl",
                     "scheme **evol-instruct** version 1", "teacher `openai:gpt-4`",
                     "judge **gpt4-rubric** version 2", "kept 30, dropped 10", "`rubric` = `helpfulness-1to10`",
                     "`min_score` = `7`", "**dedup** version 1", "duplicates 2",
                     "80 LLM requests, 21000 prompt + 10000 completion tokens, $1.1500",
                     "0 of 28 rows", "2404.12195", JUDGE_PAPER["url"], "@misc{"):
        assert expected in text, expected
    assert "sk-never-in-a-card" not in str(card) and '"api_key": "***"' in text
    assert "/work/" not in text and str(home) not in text  # no local folders in a public card


def test_private_repo_invisible_to_other_token(hub_server, lineage_home, offline_datasets) -> None:
    home, refs = lineage_home
    from click.testing import CliRunner

    from factory.cli.main import cli

    repo = "testuser/evol-private"
    result = CliRunner().invoke(cli, ["--home", str(home), "publish", refs["evol"], "--repo", repo, "--private",
                                      "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert HfApi(token=TOKEN).dataset_info(repo).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=OTHER).dataset_info(repo)
    with pytest.raises(Exception, match="(?i)doesn't exist|not found|cannot be accessed"):
        offline_datasets.load_dataset(repo, token=OTHER)
    assert len(offline_datasets.load_dataset(repo, split="train", token=TOKEN)) == 40


def test_dry_run_touches_no_network(hub_server, lineage_home) -> None:
    import socket

    home, refs = lineage_home
    with socket.socket() as s:  # a port nothing listens on: any Hub call would fail
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = run_factory("publish", refs["judged"], "--repo", "testuser/never-pushed", "--dry-run",
                         home=home, env={"HF_ENDPOINT": dead})  # and no token at all
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"target:   dataset repo testuser/never-pushed on {dead}" in out
    assert "data/train-00000-of-00001.parquet" in out and "README.md" in out
    assert "--- README.md ---" in out and "configs:" in out and "## How it was made" in out
    assert "dry run: nothing was sent" in result.stderr
    assert not HfApi(token=TOKEN).repo_exists("testuser/never-pushed", repo_type="dataset")


def test_decontamination_refuses_then_allows(hub_server, tmp_path: Path, offline_datasets) -> None:
    home = tmp_path / ".factory"
    seed, _ = import_dataset(Store(home), resolve_seed("seeds:dolly"), "dolly-seed")
    repo = "testuser/dolly-contaminated"
    refused = run_factory("publish", "dolly-seed", "--repo", repo, "--benchmarks", "seeds:benchmark_prompts",
                          home=home, env={"HF_TOKEN": TOKEN})
    assert refused.returncode == 1
    error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "refusing to publish" in error[0]
    assert "2 of 64 rows" in error[0] and "dolly-seed-0002, dolly-seed-0058" in error[0]
    assert "Traceback" not in refused.stderr
    assert not HfApi(token=TOKEN).repo_exists(repo, repo_type="dataset")

    # a larger n-gram than the shared runs passes; a threshold above 2/64 passes too
    from click.testing import CliRunner

    from factory.cli.main import cli

    runner = CliRunner()
    base = ["--home", str(home), "publish", "dolly-seed", "--repo", repo, "--benchmarks", "seeds:benchmark_prompts",
            "--token", TOKEN, "--dry-run"]
    assert runner.invoke(cli, [*base, "--ngram", "30"]).exit_code == 0
    assert runner.invoke(cli, [*base, "--max-contamination", "0.05"]).exit_code == 0
    assert runner.invoke(cli, [*base, "--max-contamination", "0.01"]).exit_code == 1

    allowed = runner.invoke(cli, [*base[:-1], "--allow-contamination"])
    assert allowed.exit_code == 0, allowed.output
    text = DatasetCard.load(repo, repo_type="dataset", token=TOKEN).text
    assert "**2 of 64 rows**" in text and "--allow-contamination" in text
    assert "`dolly-seed-0002` | `bench-seed-0002`" in text and "`dolly-seed-0058` | `bench-seed-0001`" in text
    assert len(offline_datasets.load_dataset(repo, split="train")) == 64


def test_decontam_gate_unit(tmp_path: Path) -> None:
    from factory.publish.decontam import DecontamConfig, check_version, find_hits, load_prompts

    prompts = load_prompts([resolve_seed("seeds:benchmark_prompts")])
    assert len(prompts) == 22 and prompts[0][0] == "bench-seed-0001"
    text = dict(prompts)["bench-seed-0001"]
    rows = [("leak", ["Intro. " + text.upper() + "!"]), ("clean", ["nothing in common with any prompt"]),
            ("short", [" ".join(text.split()[:12])])]  # 12 words: under a 13-gram
    assert [(h.row, h.benchmark) for h in find_hits(rows, prompts, 13)] == [("leak", "bench-seed-0001")]
    assert [h.row for h in find_hits(rows, prompts, 8)] == ["leak", "short"]

    store = Store(tmp_path / "h")
    flan, _ = import_dataset(store, resolve_seed("seeds:flan"), "flan-seed")
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"question_id": i, "turns": [t, "follow-up"]}) + "\n"
                             for i, t in enumerate(["What is two plus two?", text])))
    report = check_version(flan, DecontamConfig(benchmarks=[str(bench)]), store)
    assert report.checked and report.prompts == 2 and report.contaminated == 0 and not report.over


def test_a_stage_records_its_paper_and_the_card_cites_it(tmp_path: Path) -> None:
    """A stage's declared paper goes into its version's manifest and onto the card, even when no plugin is asked;
    a name that merely mentions a method (`spin-dpo`) cites nothing more."""
    from factory.papers import DPO, OPENBEZOAR, SPIN
    from factory.pipeline.execute import run_stage
    from factory.pipeline.hh_rlhf import HHRLHF
    from factory.publish.dataset import PublishOptions, plan_dataset

    store = Store(tmp_path / "h")
    hh, _ = import_dataset(store, resolve_seed("seeds:hh"), "hh")
    pairs = run_stage(store, HHRLHF(), None, hh, "spin-dpo").version
    recorded = pairs.manifest.model_extra["paper"]
    assert recorded["url"] == HHRLHF.paper.url and recorded["key"] == "hhrlhf1"

    plan, _ = plan_dataset(store, pairs.ref, PublishOptions(repo="testuser/spin-dpo"), papers=None)
    assert HHRLHF.paper.url in plan.card and "@misc{hhrlhf1," in plan.card and OPENBEZOAR.url in plan.card
    assert SPIN.url not in plan.card and DPO.url not in plan.card


def test_shards_branch_and_stale_files(hub_server, tmp_path: Path, offline_datasets) -> None:
    """Many shards load as one split; a one-shard version on a branch replaces them there, not on main."""
    from click.testing import CliRunner

    from factory.cli.main import cli

    store, api, repo = Store(tmp_path / ".factory"), HfApi(token=TOKEN), "testuser/sharded"
    with store.writer("big", stage=StageInfo(kind="import", name="import", version="1"), config={"n": 3},
                      shard_bytes=1) as w:  # every batch becomes its own shard
        for part in range(3):
            w.write([{"id": f"r{part}-{i}", "text": f"row {i} of part {part}"} for i in range(5)])
        big = w.commit()
    shards = len(big.files())
    assert shards > 1
    runner = CliRunner()
    invoke = ["--home", str(store.home), "publish", "--token", TOKEN, "--repo", repo]
    assert runner.invoke(cli, [*invoke, big.ref]).exit_code == 0
    assert sorted(_rows(offline_datasets.load_dataset(repo, split="train")), key=lambda r: r["id"]) == sorted(
        big.read().to_dicts(), key=lambda r: r["id"])

    small, _ = import_dataset(store, resolve_seed("seeds:hh"), "hh-seed")
    result = runner.invoke(cli, [*invoke, small.ref, "--revision", "dev"])
    assert result.exit_code == 0, result.output
    assert {b.name for b in api.list_repo_refs(repo, repo_type="dataset").branches} == {"main", "dev"}
    assert api.list_repo_files(repo, repo_type="dataset", revision="dev") == [
        ".gitattributes", "README.md", "data/train-00000-of-00001.parquet"]
    assert len([f for f in api.list_repo_files(repo, repo_type="dataset") if f.startswith("data/")]) == shards
    dev = offline_datasets.load_dataset(repo, split="train", revision="dev")
    assert _rows(dev) == small.read().to_dicts()
    tags = {t.name: t.target_commit for t in api.list_repo_refs(repo, repo_type="dataset").tags}
    assert tags[small.version] == api.dataset_info(repo, revision="dev").sha


def test_no_write_access_and_zoo_list_empty(hub_server, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from factory.cli.main import cli

    home = tmp_path / ".factory"
    import_dataset(Store(home), resolve_seed("seeds:hh"), "hh-seed")
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(home), "publish", "hh-seed", "--repo", "otheruser/not-mine",
                                 "--token", TOKEN])
    assert result.exit_code == 1 and "403 Forbidden" in result.output and TOKEN not in result.output
    listed = runner.invoke(cli, ["--home", str(home), "zoo", "list"])
    assert listed.exit_code == 0 and "nothing published" in listed.output
