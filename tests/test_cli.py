"""The `factory` CLI: verbs, dataset commands, lineage, and one-line errors (CliRunner and subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import InputRef, StageInfo, Store
from tests.helpers import run_factory, write_jsonl

VERBS = ["build", "judge", "train", "publish", "datasets", "schemes", "judges", "run", "eval", "lineage"]
ROWS = [{"id": str(i), "instruction": f"question {i}", "response": f"answer {i}"} for i in range(5)]


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def invoke(home, *args):
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    return result


def test_help_lists_the_verbs_and_version():
    r = run_factory("--help", home=__import__("pathlib").Path("unused"))
    assert r.returncode == 0
    for verb in VERBS:
        assert f"\n  {verb} " in r.stdout, verb
    assert CliRunner().invoke(cli, ["--version"]).output.startswith("factory, version ")


def test_import_show_diff_export_lineage(home, tmp_path):
    src = write_jsonl(tmp_path / "seeds.jsonl", ROWS)
    r1, r2 = invoke(home, "datasets", "import", str(src), "--name", "s"), invoke(home, "datasets", "import", str(src),
                                                                                  "--name", "s")
    assert r1.exit_code == 0 and r2.exit_code == 0
    ref1 = r1.stdout.strip().splitlines()[-1]
    assert ref1.startswith("s@") and r2.stdout.strip().splitlines()[-1] == ref1

    changed = [ROWS[0], ROWS[1], {"id": "2", "instruction": "question 2", "response": "better answer"}, ROWS[3],
               {"id": "9", "instruction": "new", "response": "new"}]  # id 4 removed, id 9 added, id 2 changed
    write_jsonl(src, changed)
    ref2 = invoke(home, "datasets", "import", str(src), "--name", "s").stdout.strip().splitlines()[-1]
    assert ref2 != ref1

    listing = invoke(home, "datasets", "list", "--all").stdout
    assert ref1.split("@")[1] in listing and ref2.split("@")[1] in listing

    show = invoke(home, "datasets", "show", ref1, "--rows", "2")
    assert show.exit_code == 0 and "question 0" in show.stdout and "question 2" not in show.stdout
    manifest = json.loads(invoke(home, "datasets", "show", "s", "--json").stdout)
    assert manifest["version"] == ref2.split("@")[1] and manifest["rows"] == 5

    diff = invoke(home, "datasets", "diff", ref1, ref2).stdout
    assert "+1 added, -1 removed, ~1 changed, 3 unchanged" in diff, diff

    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"out.{fmt}"
        assert invoke(home, "datasets", "export", ref2, "--format", fmt, "-o", str(out)).exit_code == 0
        back = {"jsonl": pl.read_ndjson, "csv": pl.read_csv, "parquet": pl.read_parquet}[fmt](out)
        assert back["response"].to_list() == [r["response"] for r in changed]

    lineage = invoke(home, "lineage", ref2).stdout
    assert ref2 in lineage and "import:import@1" in lineage and "seeds.jsonl" in lineage


def test_diff_reports_schema_changes(home, tmp_path):
    a = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "a.jsonl", ROWS)), "--name", "a")
    b_rows = [{**r, "score": 1.5} for r in ROWS]
    b = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "b.jsonl", b_rows)), "--name", "b")
    out = invoke(home, "datasets", "diff", a.stdout.strip(), b.stdout.strip()).stdout
    assert "+ column score (Float64)" in out and "0 changed, 5 unchanged" in out


def test_lineage_walks_inputs(home, tmp_path):
    src = write_jsonl(tmp_path / "seeds.jsonl", ROWS)
    base = invoke(home, "datasets", "import", str(src), "--name", "seed").stdout.strip()
    store = Store(home)
    parent = store.resolve(base)
    with store.writer("evolved", stage=StageInfo(kind="scheme", name="evol-instruct", version="1"),
                      config={"rounds": 4, "llm": "openai:gpt-4"},
                      inputs=[InputRef(name=parent.name, version=parent.version)]) as w:
        w.write(ROWS)
        child = w.commit(counters={"kept": 5})
    out = invoke(home, "lineage", "evolved").stdout
    lines = out.splitlines()
    assert lines[0].startswith(child.ref) and "scheme:evol-instruct@1" in lines[0]
    assert lines[1].strip() == "model:    openai:gpt-4"  # each LLM step names its model
    assert not any("model:" in line for line in lines[2:]), out  # the import step has none
    assert any(line.lstrip("│ ").startswith(f"└─ {base}") for line in lines), out
    tree = json.loads(invoke(home, "lineage", "evolved", "--json").stdout)
    assert tree["inputs"][0]["ref"] == base and tree["config"]["rounds"] == 4
    assert tree["model"] == "openai:gpt-4" and tree["inputs"][0]["model"] is None

    refused = invoke(home, "datasets", "rm", base)
    assert refused.exit_code == 1 and f"input of {child.ref}" in refused.stderr
    assert store.resolve(base).version == parent.version
    assert invoke(home, "datasets", "rm", "evolved").exit_code == 0
    assert invoke(home, "datasets", "rm", base).exit_code == 0
    assert Store(home).names() == []


@pytest.mark.parametrize("args,code,message", [
    (["datasets", "show", "nope"], 2, "error: unknown dataset 'nope'"),
    (["datasets", "import", "missing.jsonl", "--name", "x"], 2, "error: no such file: missing.jsonl"),
    (["datasets", "import", "{bad}", "--name", "../x"], 2, "error: invalid dataset name '../x'"),
    (["datasets", "import", "{bad}", "--name", "x"], 2, "bad.jsonl:2: malformed JSON"),
    (["datasets", "import", "{good}", "--name", "x", "--map", "a=missing"], 2, "error: --map: column 'missing'"),
    (["datasets", "import", "{good}", "--name", "x", "--require", "instruction,context"], 2, "lacks column context"),
    (["datasets", "import", "{good}"], 2, "Missing option '--name'"),
    (["run", "recipe.yaml"], 2, "error: no recipe file 'recipe.yaml' (shipped recipes: "),
    (["schemes", "inspect", "nope"], 2, "error: unknown scheme 'nope'"),
])
def test_errors_are_one_line_without_traceback(home, tmp_path, args, code, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{"a": \n')
    good = write_jsonl(tmp_path / "good.jsonl", ROWS)
    args = [a.replace("{bad}", str(bad)).replace("{good}", str(good)) for a in args]
    r = run_factory(*args, home=home)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    if code == 1 or message.startswith("error:"):
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_verbose_shows_the_traceback(home):
    r = run_factory("-v", "datasets", "show", "nope", home=home)
    assert r.returncode == 2 and "Traceback" in r.stderr and "unknown dataset" in r.stderr


def test_not_a_store_is_refused_and_untouched(tmp_path):
    other = tmp_path / "project"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    r = run_factory("datasets", "import", "seeds:dolly", "--name", "d", home=other)
    assert r.returncode == 2 and "is not a factory store" in r.stderr
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]


def test_errors_leave_stored_data_alone(home, tmp_path):
    ref = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "s.jsonl", ROWS)), "--name", "s").stdout
    bad = tmp_path / "s.jsonl"
    bad.write_text('{"id": "1"}\nnot json\n')
    assert invoke(home, "datasets", "import", str(bad), "--name", "s").exit_code == 2
    assert invoke(home, "datasets", "show", "s", "--json").exit_code == 0
    assert Store(home).resolve("s").ref == ref.strip() and Store(home).resolve("s").manifest.rows == 5


def test_default_home_is_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FACTORY_HOME", raising=False)
    r = CliRunner().invoke(cli, ["datasets", "import", "seeds:flan", "--name", "flan"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / ".factory" / "factory-store.json").is_file()


@pytest.mark.slow
def test_quickstart_the_readme_main_command(home):
    """Exactly what the README's first command runs after installing: offline, with the embedded model."""
    r = run_factory("quickstart", home=home, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "kept/dropped/failed" in r.stdout and "sample rows of lamini-judged" in r.stdout
    store = Store(home)
    assert store.resolve("dolly-seed").manifest.rows >= 50
    built = store.resolve("lamini")
    df = built.read()
    assert 0 < df.height <= 8 and built.manifest.stage.name == "lamini"
    assert df["response"].drop_nulls().len() > 0 and df["model"][0] == "hf:local"
    from factory.schemes.novelty import rouge_l, tokens

    seeds = [tokens(t) for t in store.resolve("dolly-seed").read()["instruction"]]
    for text in df["instruction"]:  # the sample rows are new instructions, not the seed examples copied
        assert max(rouge_l(tokens(text), s) for s in seeds) < 0.7, text
    deduped = store.resolve("lamini-dedup")
    assert deduped.manifest.inputs[0].ref() == built.ref and built.manifest.inputs[0].name == "dolly-seed"
    judged = store.resolve("lamini-judged")
    assert judged.manifest.inputs[0].ref() == deduped.ref
    run = json.loads((home / "runs" / "quickstart" / "run.json").read_text())
    assert [s["status"] for s in run["stages"]] == ["done"] * 6 and run["ok"]
    ckpt = Path(run["stages"][4]["artefact"])
    assert json.loads((ckpt / "factory.json").read_text())["datasets"][0]["name"] == "lamini-judged"
    assert not (home / "models").exists()  # the embedded model's cache is per machine, not per store
    again = run_factory("quickstart", home=home, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "every stage was done before" in again.stdout and judged.ref in again.stdout
    rerun = json.loads((home / "runs" / "quickstart" / "run.json").read_text())
    assert [s["status"] for s in rerun["stages"]] == ["skipped"] * 6
