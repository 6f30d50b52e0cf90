"""What a new user meets first: real seed files with fewer columns, pipes, exit codes, dry runs without keys."""

from __future__ import annotations

import subprocess
import sys

import pytest

from factory.store import Store
from factory.testing.llm_stub import StubLLMServer
from tests.helpers import REPO, run_factory, write_jsonl

LIST = "\n".join(f"{i}. {t}" for i, t in enumerate([
    "Write a short note about volcanoes for a curious reader.", "List three uses of copper in everyday life.",
    "Explain why the sky looks blue at noon.", "Suggest a name for a bakery that sells only bread.",
    "Summarise the rules of chess in two sentences."], 1))


def teacher(req: dict) -> str:
    return LIST if "numbered list" in req["prompt"] else "A careful answer in two clear sentences. It helps."


@pytest.mark.parametrize("rows", [
    [{"instruction": f"Explain topic {i} in plain words."} for i in range(4)],  # only what lamini declares
    [{"instruction": f"Explain topic {i}.", "context": "", "response": "r", "category": "open_qa"}
     for i in range(4)],  # dolly-15k's columns: no id
])
def test_lamini_builds_from_seeds_with_only_the_declared_columns(tmp_path, rows):
    seeds = write_jsonl(tmp_path / "seeds.jsonl", rows)
    env = {"OPENAI_API_KEY": "k"}
    with StubLLMServer(responder=teacher) as stub:
        env["OPENAI_BASE_URL"] = stub.openai_base_url
        r = run_factory("build", "lamini", "--from", str(seeds), "--llm", "openai:stub", "--n", "4",
                        home=tmp_path / "home", env=env)
    assert r.returncode == 0, r.stderr
    df = Store(tmp_path / "home").resolve(r.stdout.strip()).read()
    assert df.height == 4 and df["error"].is_null().all() and df["response"].is_not_null().all()


def test_unknown_dataset_is_bad_input(tmp_path):
    r = run_factory("datasets", "show", "nope", home=tmp_path / "home")
    assert r.returncode == 2 and r.stderr.startswith("error: unknown dataset 'nope'"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_show_into_a_closed_pipe_is_quiet(tmp_path):
    home = tmp_path / "home"
    assert run_factory("datasets", "import", "seeds:dolly", "--name", "d", home=home).returncode == 0
    cmd = f"{sys.executable} -m factory --home {home} datasets show d -k 64 | head -1"
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.stdout.startswith("d@") and r.stderr == "", r.stderr


def test_dry_run_needs_no_api_key(tmp_path):
    home = tmp_path / "home"
    assert run_factory("datasets", "import", "seeds:dolly", "--name", "d", home=home).returncode == 0
    r = run_factory("build", "lamini", "--from", "d", "--llm", "openai:gpt-4o-mini", "--n", "10", "--dry-run",
                    home=home)
    assert r.returncode == 0 and r.stdout.startswith("dry run: lamini"), r.stderr
    r = run_factory("judge", "d", "--with", "gpt4o-mini", "--dry-run", home=home)
    assert r.returncode == 0 and "64 requests to send" in r.stdout, r.stderr
    # without --dry-run the missing key is still a clear one-line error, before anything is stored
    r = run_factory("judge", "d", "--with", "gpt4o-mini", home=home)
    assert r.returncode == 1 and r.stderr.strip() == "error: no API key: set OPENAI_API_KEY", r.stderr
    assert Store(home).names() == ["d"]


def test_failed_judgments_never_pass_the_filter_and_are_asked_again(tmp_path, openai_stub):
    """--min-score: rows without a verdict are left out, counted failed (manifest, card); a rerun re-asks them."""
    from click.testing import CliRunner

    from factory.cards.render import partial
    from factory.cli.main import cli
    from factory.publish.lineage import summarize, walk

    home = tmp_path / "home"
    rows = [{"id": i, "instruction": f"question {i}", "response": f"answer {i}"} for i in range(10)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    fixed: set[int] = set()

    def judge(call):  # rows 0-2 get no verdict until "fixed"; the others score by parity
        i = int(call["prompt"].split("question ")[1].split()[0])
        if i < 3 and i not in fixed:
            return "This response is fine, I think."
        return "[[9]]" if i % 2 else "[[3]]"

    stub = openai_stub(responder=judge, key="k")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "datasets", "import", str(tmp_path / "a.jsonl"),
                               "--name", "a"]).exit_code == 0
    args = ["--home", str(home), "judge", "a", "--with", "openai:stub", "--min-score", "7", "--no-structured"]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    version = Store(home).resolve("a-judged")
    df = version.read()
    assert sorted(df["id"].to_list()) == [3, 5, 7, 9] and df["judge_error"].is_null().all()
    assert version.manifest.counters == {"kept": 4, "dropped": 3, "failed": 3}
    assert "kept 4, dropped 3, failed 3" in r.output
    nodes = walk(Store(home), version)
    card = partial("lineage.md.jinja", summary=summarize(nodes), nodes=nodes, level="##")
    assert "kept 4, dropped 3, failed 3" in card
    stub.reset()
    fixed.update({0, 1})
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert stub.stats()["requests"] == 3  # exactly the rows without a verdict; the 7 verdicts are cached
    again = Store(home).resolve("a-judged")
    assert sorted(again.read()["id"].to_list()) == [1, 3, 5, 7, 9]
    assert again.manifest.counters == {"kept": 5, "dropped": 4, "failed": 1}


def test_lamini_stores_no_copies_of_its_seeds_and_counts_them(tmp_path):
    import re

    def copier(req):  # a small teacher: repeats the examples it was shown, adds one idea of its own
        prompt = req["prompt"]
        if "numbered list" not in prompt:
            return "An answer of a few words."
        shown = re.findall(r"^\d+\. (.+)$", re.split(r"\nWrite \d+ new", prompt)[0], re.M)
        return "\n".join(f"{i}. {t}" for i, t in enumerate([*shown, "Plan a weekend trip to the mountains "
                                                           "on a small budget."], 1))

    home = tmp_path / "home"
    assert run_factory("datasets", "import", "seeds:dolly", "--name", "d", home=home).returncode == 0
    with StubLLMServer(responder=copier) as stub:
        env = {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "k"}
        r = run_factory("build", "lamini", "--from", "d", "--llm", "openai:stub", "--n", "15", home=home, env=env)
    assert r.returncode == 0, r.stderr
    version = Store(home).resolve(r.stdout.strip())
    seeds = set(Store(home).resolve("d").read()["instruction"])
    df = version.read()
    assert df["instruction"].to_list() == ["Plan a weekend trip to the mountains on a small budget."]
    c = version.manifest.counters
    assert c["copied_seed"] == 3 * 3 and c["near_duplicate"] == 2 and c["kept"] == 1  # 3 requests of 3 examples
    assert not seeds & set(df["instruction"])


def test_empty_results_say_why_and_are_stored_only_when_allowed(tmp_path):
    def leaky(req):  # every evolution copies the evolving prompt's own words: all eliminated
        if req["prompt"].startswith("#Rewritten Prompt#"):  # the response step answers the evolved text
            return "Plants turn sunlight, water and air into sugar and oxygen."
        return "#Rewritten Prompt#: the given prompt, made harder."

    home = tmp_path / "home"
    rows = [{"instruction": f"Explain idea {i} to a child."} for i in range(4)]
    seeds = write_jsonl(tmp_path / "s.jsonl", rows)
    assert run_factory("datasets", "import", str(seeds), "--name", "s", home=home).returncode == 0
    with StubLLMServer(responder=leaky) as stub:
        env = {"OPENAI_BASE_URL": stub.openai_base_url, "OPENAI_API_KEY": "k"}
        args = ("-q", "build", "evol-instruct", "--from", "s", "--llm", "openai:stub", "--set", "rounds=1",
                "--set", "include_seeds=false")
        r = run_factory(*args, home=home, env=env)
        assert r.returncode == 1, r.stderr
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1 and "produced no usable rows from 4 asked for" in line
        assert "eliminated_copies_prompt_words 4" in line and "factory build lamini" in line
        assert Store(home).versions("evol-instruct") == []
        stub.reset()
        r = run_factory(*args, "--allow-empty", home=home, env=env)
        assert r.returncode == 0 and "stored empty" in r.stderr, r.stderr
        assert stub.stats()["requests"] == 0  # the second run took every answer from the cache
    empty = Store(home).resolve("evol-instruct")
    assert empty.manifest.rows == 0
    for later in (["dedup", "evol-instruct"], ["judge", "evol-instruct", "--with", "openai:stub"],
                  ["train", "sft", "--model", "local", "--data", "evol-instruct", "--out", str(tmp_path / "c")]):
        r = run_factory(*later, home=home)
        assert r.returncode == 2 and f"{empty.ref} has no rows" in r.stderr, (later, r.stderr)


def test_a_stage_that_loses_most_rows_says_so(tmp_path, openai_stub):
    from click.testing import CliRunner

    from factory.cli.main import cli

    home = tmp_path / "home"
    rows = [{"id": i, "instruction": f"question {i}", "response": f"answer {i}"} for i in range(20)]
    write_jsonl(tmp_path / "a.jsonl", rows)
    openai_stub(responder=lambda call: "[[9]]" if "question 7\n" in call["prompt"] else "[[2]]", key="k")
    runner = CliRunner()
    runner.invoke(cli, ["--home", str(home), "datasets", "import", str(tmp_path / "a.jsonl"), "--name", "a"])
    r = runner.invoke(cli, ["--home", str(home), "judge", "a", "--with", "openai:stub", "--no-structured"])
    assert r.exit_code == 0, r.output
    assert "warning: quality kept 1 of 20 rows asked for: dropped 19. Lower --min-score (now 7)" in r.output
