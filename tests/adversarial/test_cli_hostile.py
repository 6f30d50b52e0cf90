"""A hostile user at the command line, on the data stages: conflicting `--map`s, absurd numbers, export targets
that are not files, columns of the wrong type. Each is a one-line error (exit 2) or the right result, never a
traceback, a silent loss or a damaged file outside the store; through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import Store
from tests.helpers import write_jsonl

ROWS = [{"instruction": "What is 2+2?", "response": "4"}, {"instruction": "Name a colour", "response": "red"},
        {"instruction": "Capital of France?", "response": "Paris"}]


def invoke(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    r = invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "good.jsonl", ROWS)), "--name", "good")
    assert r.exit_code == 0, r.output
    return home


@pytest.mark.parametrize("maps, needle", [
    (["a=instruction", "a=response"], "'a'"),  # the same new name twice: one column would vanish
    (["a=response", "b=response"], "'response'"),  # the same source twice: one name would vanish
    (["instruction=response"], "'instruction'"),  # onto a column the source already has
])
def test_conflicting_maps_are_refused_and_nothing_is_stored(home, tmp_path, maps, needle) -> None:
    args = [x for m in maps for x in ("--map", m)]
    one_line_error(invoke(home, "datasets", "import", str(tmp_path / "good.jsonl"), "--name", "m", *args), needle)
    assert Store(home).latest("m") is None


def test_a_map_that_swaps_two_columns_still_works(home, tmp_path) -> None:
    r = invoke(home, "datasets", "import", str(tmp_path / "good.jsonl"), "--name", "swapped",
               "--map", "instruction=response", "--map", "response=instruction")
    assert r.exit_code == 0, r.output
    assert Store(home).latest("swapped").read().row(0, named=True) == {"instruction": "4",
                                                                       "response": "What is 2+2?"}


def test_rows_without_columns_are_refused(home, tmp_path) -> None:
    write_jsonl(tmp_path / "empty-objects.jsonl", [{}, {}])
    one_line_error(invoke(home, "datasets", "import", str(tmp_path / "empty-objects.jsonl"), "--name", "e"),
                   "no columns")


def test_a_directory_that_is_not_a_saved_dataset(home, tmp_path) -> None:
    (tmp_path / "plain").mkdir()
    one_line_error(invoke(home, "datasets", "import", str(tmp_path / "plain"), "--name", "p", "--format", "arrow-dir"),
                   "save_to_disk")


@pytest.mark.parametrize("k", ["-1", "99999999999999999999"])
def test_show_with_an_absurd_row_count(home, k) -> None:
    result = invoke(home, "datasets", "show", "good", "-k", k)
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    if k.startswith("-"):
        assert result.exit_code == 2, result.output
    else:  # more than there are: all of them
        assert result.exit_code == 0 and "[2]" in result.output and "Paris" in result.output, result.output


def test_diff_without_a_key_counts_rows(home, tmp_path) -> None:
    write_jsonl(tmp_path / "more.jsonl", [*ROWS[:2], {"instruction": "New?", "response": "yes"}])
    assert invoke(home, "datasets", "import", str(tmp_path / "more.jsonl"), "--name", "more").exit_code == 0
    result = invoke(home, "datasets", "diff", "good", "more")
    assert result.exit_code == 0, result.output
    assert "rows: 3 -> 3" in result.output and "+1 added, -1 removed" in result.output
    assert "2 unchanged" in result.output, result.output


def test_export_into_a_folder_that_cannot_be_made(home, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    one_line_error(invoke(home, "datasets", "export", "good", "-o", str(blocker / "x.jsonl")), str(blocker))
    assert blocker.read_text() == "keep me"


def test_export_to_a_fifo_writes_into_it_and_leaves_it_a_fifo(home, tmp_path) -> None:
    """`-o /dev/stdout` is a device, a process substitution a FIFO: rename-into-place would replace the node
    itself with a regular file (as root: /dev/stdout for every later program)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen([sys.executable, "-c", f"import sys; sys.stdout.write(open({str(fifo)!r}).read())"],
                              stdout=subprocess.PIPE, text=True)
    result = invoke(home, "datasets", "export", "good", "-o", str(fifo))
    out, _ = reader.communicate(timeout=60)
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in out.splitlines()] == ROWS
    assert fifo.is_fifo()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_export_to_dash_is_stdout(home, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--home", str(home), "-q", "datasets", "export", "good", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.stdout.splitlines()] == ROWS
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("args", [["datasets", "export", "big", "-o", "-"],
                                  ["datasets", "export", "big", "-o", "{tmp}/stdout", "--format", "csv"],
                                  ["datasets", "show", "big", "-k", "20000"]])
def test_output_piped_into_head(tmp_path, args) -> None:
    """`factory datasets export big -o - | head -1`: the reader goes away early; no traceback, no error line."""
    home = tmp_path / "home"
    rows = [{"instruction": f"question {i} " + "w" * 60, "response": "r" * 60} for i in range(20000)]
    assert invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "big.jsonl", rows)), "--name",
                  "big").exit_code == 0
    (tmp_path / "stdout").symlink_to("/proc/self/fd/1")  # what /dev/stdout is, without touching the real one
    env = {**os.environ, "FACTORY_HOME": str(home)}
    args = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "factory", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert first.strip()
    assert "Traceback" not in err and "error" not in err, err
    assert proc.returncode in (0, 1), err  # click's own exit for a closed pipe is 1
    assert (tmp_path / "stdout").is_symlink()


@pytest.fixture
def stub(openai_stub):
    return openai_stub(key="sk-hostile-test")


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--set", "seed=-1"], ["--set", f"seed={2**64}"]])
def test_a_seed_out_of_range_is_refused_before_any_call(home, stub, args) -> None:
    result = invoke(home, "build", "evol-instruct", "--from", "good", "--llm", "openai:stub-model", "--n", "2", *args)
    assert result.exit_code == 2 and "seed" in result.output, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output, result.output
    assert stub.stats()["requests"] == 0


@pytest.mark.parametrize("args, key", [
    (["generate", "good", "--llm", "openai:stub-model", "--temperature", "inf"], "temperature"),
    (["build", "evol-instruct", "--from", "good", "--llm", "openai:stub-model", "--set", "temperature=.inf"],
     "temperature"),
    (["build", "evol-instruct", "--from", "good", "--llm", "openai:stub-model", "--timeout", "inf"], "timeout"),
    (["dedup", "good", "--near", "--threshold", "inf"], "threshold"),
])
def test_infinite_settings_name_the_key(home, stub, args, key) -> None:
    dry = ["--dry-run"] if "--llm" in args else []  # were it accepted, nothing is sent and nothing waits forever
    one_line_error(invoke(home, *args, *dry), key)
    assert stub.stats()["requests"] == 0


def test_dedup_threshold_without_near_or_semantic_is_refused(home) -> None:
    one_line_error(invoke(home, "dedup", "good", "--threshold", "0.5"), "--threshold")
    assert Store(home).latest("good-dedup") is None


def test_dedup_num_perm_has_a_ceiling(home) -> None:
    result = invoke(home, "dedup", "good", "--near", "--num-perm", "99999999999")
    assert result.exit_code == 2 and "--num-perm" in result.output, result.output
    assert "MemoryError" not in result.output


def test_dedup_semantic_with_an_embedding_model(home, tmp_path) -> None:
    """--embedding-model used to crash every time (`model` passed twice to build_config)."""
    from factory.pipeline.semantic import default_model

    one_line_error(invoke(home, "dedup", "good", "--semantic", "--embedding-model", str(tmp_path / "nope")),
                   "--embedding-model")
    write_jsonl(tmp_path / "twice.jsonl", [*ROWS, ROWS[0]])
    assert invoke(home, "datasets", "import", str(tmp_path / "twice.jsonl"), "--name", "twice").exit_code == 0
    result = invoke(home, "dedup", "twice", "--semantic", "--embedding-model", str(default_model()))
    assert result.exit_code == 0, result.output
    assert Store(home).latest("twice-dedup").manifest.counters["dropped"] == 1


@pytest.mark.parametrize("rows, column", [([{"response": 7}, {"response": 8}], "response"),
                                          ([{"response": {"text": "a b c"}}] * 2, "response"),
                                          ([{"response": ["a b", "c"]}] * 2, "response")])
def test_filter_refuses_a_column_that_is_not_text(home, tmp_path, rows, column) -> None:
    """Counting words of a number or a struct used to keep every row and exit 0."""
    write_jsonl(tmp_path / "typed.jsonl", rows)
    assert invoke(home, "datasets", "import", str(tmp_path / "typed.jsonl"), "--name", "typed").exit_code == 0
    one_line_error(invoke(home, "filter", "typed", "--min-words", "2"), f"column {column!r}")
    assert Store(home).latest("typed-filtered") is None


@pytest.mark.parametrize("args, needle", [(["--from", "nope"], "'nope'"), (["--until", "nope"], "'nope'"),
                                          (["--from", "lamini-dedup", "--until", "lamini"], "comes after"),
                                          (["--budget", "nan"], "--budget")])
def test_run_refuses_bad_stage_names_and_budgets_in_a_dry_run_too(home, args, needle) -> None:
    """The dry run is how a user validates a command; it used to print the full plan for a --from that the real
    run would refuse, and take a nan budget."""
    result = invoke(home, "run", "quickstart", "--dry-run", *args)
    assert result.exit_code == 2 and needle in result.output, result.output
    assert "cost ceiling" not in result.output, result.output


def test_eval_temperature_refuses_nan(home) -> None:
    result = invoke(home, "eval", "mt-bench", "--model", "x", "--judge", "y", "--temperature", "nan")
    assert result.exit_code == 2 and "finite" in result.output, result.output


@pytest.mark.parametrize("what", ["missing", "file", "empty"])
def test_a_model_path_that_is_no_model_is_bad_input(home, tmp_path, what) -> None:
    """`--model ./typo` is the user's mistake (exit 2), like any other missing file."""
    target = tmp_path / "model"
    if what == "file":
        target.write_text("not a model")
    elif what == "empty":
        target.mkdir()
    result = invoke(home, "prune", "-m", str(target), "--blocks", "1", "--calib", "good", "-o", str(tmp_path / "out"))
    one_line_error(result, str(target))


@pytest.mark.parametrize("name", ["bom.jsonl", "bom.json", "bom.csv"])
def test_utf8_with_a_byte_order_mark_imports(home, tmp_path, name) -> None:
    """What Notepad and PowerShell write: the same rows as without the mark, the mark not in a column name."""
    body = {"bom.jsonl": "".join(json.dumps(r) + "\n" for r in ROWS), "bom.json": json.dumps(ROWS),
            "bom.csv": "instruction,response\n" + "".join(f"{r['instruction']},{r['response']}\n" for r in ROWS)}[name]
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + body.encode())
    result = invoke(home, "datasets", "import", str(tmp_path / name), "--name", "bom")
    assert result.exit_code == 0, result.output
    assert Store(home).latest("bom").read().to_dicts() == ROWS


def test_a_home_that_cannot_be_created(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    write_jsonl(tmp_path / "good.jsonl", ROWS)
    result = CliRunner().invoke(cli, ["--home", str(blocker / "home"), "datasets", "import",
                                      str(tmp_path / "good.jsonl"), "--name", "good"])
    one_line_error(result, "factory home")
    assert blocker.read_text() == "keep me"


@pytest.mark.parametrize("args", [["--keep-all", "--min-score", "5"], ["--keep-all", "--set", "min_score=5"]])
def test_judge_keep_all_with_a_min_score_is_a_conflict(home, stub, args) -> None:
    """--keep-all used to drop the --min-score silently: every row kept, exit 0."""
    one_line_error(invoke(home, "judge", "good", "--with", "openai:stub-model", *args), "--min-score")
    assert stub.stats()["requests"] == 0 and Store(home).latest("good-judged") is None


@pytest.mark.parametrize("args", [["generate", "good", "--llm", "openai:stub-model"],
                                  ["judge", "good", "--with", "openai:stub-model", "--dry-run"]])
def test_an_n_beyond_int64_is_a_usage_error(home, stub, args) -> None:
    result = invoke(home, *args, "--n", str(10**23))
    assert result.exit_code == 2 and "--n" in result.output, result.output
    assert "Overflow" not in result.output and stub.stats()["requests"] == 0
