"""Pairwise judging asks in both orders: a position-biased judge shows up as inconsistency, counted as ties."""

from __future__ import annotations

import re

from factory.store import Store
from tests.helpers import write_jsonl
from tests.test_judge_cli import invoke, stub_env  # noqa: F401 (fixture)

N = 8
ROWS = [{"id": i, "instruction": f"Question {i}?", "response_a": f"good answer {i}" if i % 2 else f"poor answer {i}",
         "response_b": f"poor answer {i}" if i % 2 else f"good answer {i}"} for i in range(N)]


def shown(call: dict) -> tuple[str, str]:
    """(answer shown as A, answer shown as B) in a judge prompt."""
    a = re.search(r"### Assistant A's answer\n(.*?)\n", call["prompt"]).group(1)
    b = re.search(r"### Assistant B's answer\n(.*?)$", call["prompt"], re.S).group(1).strip()
    return a, b


def test_a_judge_that_always_prefers_the_first_answer_is_100_percent_inconsistent(tmp_path, stub_env):  # noqa: F811
    home = tmp_path / "home"
    seen = []

    def first_wins(call):
        seen.append(shown(call))
        return "The first answer is better. [[A]]"

    stub = stub_env(first_wins)
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", ROWS)), "--name", "pairs")
    r = invoke(home, "judge", "pairs", "--with", "openai:stub-model", "--rubric", "mt-bench-pair", "--no-structured")
    assert r.exit_code == 0, r.output
    assert stub.stats()["requests"] == 2 * N
    for row in ROWS:  # each pair was shown in both orders
        assert (row["response_a"], row["response_b"]) in seen and (row["response_b"], row["response_a"]) in seen
    version = Store(home).resolve(r.stdout.strip())
    df = version.read()
    assert df.height == N  # pairwise keeps every row unless --min-score is given
    assert df["judge_verdict"].to_list() == ["tie"] * N and df["judge_consistent"].to_list() == [False] * N
    assert df["judge_score"].to_list() == [0.5] * N and df["judge_error"].null_count() == N
    stats = version.manifest.model_extra["judge"]["stats"]
    assert stats["consistency_rate"] == 0.0 and stats["inconsistent"] == N and stats["ties"] == N
    assert "position-swap consistency 0% (8 inconsistent, counted as ties)" in r.output


def test_a_fair_judge_is_consistent_and_min_score_keeps_the_rows_a_wins(tmp_path, stub_env):  # noqa: F811
    home = tmp_path / "home"

    def fair(call):
        a, b = shown(call)
        if "good" in a:
            return '{"rationale": "A is right.", "verdict": "A"}'
        return '{"rationale": "B is right.", "verdict": "B"}' if "good" in b else "[[C]]"

    stub_env(fair)
    invoke(home, "datasets", "import", str(write_jsonl(tmp_path / "p.jsonl", ROWS)), "--name", "pairs")
    r = invoke(home, "judge", "pairs", "--with", "openai:stub-model", "--rubric", "mt-bench-pair",
               "--min-score", "1", "--name", "a-wins")
    assert r.exit_code == 0, r.output
    version = Store(home).resolve("a-wins")
    df = version.read()
    assert df["id"].to_list() == [i for i in range(N) if i % 2]
    assert set(df["judge_verdict"]) == {"A"} and all(df["judge_consistent"]) and set(df["judge_score"]) == {1.0}
    assert df["judge_rationale"][0] == "[A shown first] A is right.\n\n[B shown first] B is right."
    stats = version.manifest.model_extra["judge"]["stats"]
    assert stats["consistency_rate"] == 1.0 and (stats["a_wins"], stats["b_wins"]) == (N // 2, N // 2)
    assert version.manifest.counters == {"kept": N // 2, "dropped": N // 2, "failed": 0}
