"""Verdict parsing: a table of judge replies and what each must parse to (a score, or an error that says why).

The same table is sent through a real judge run against the stub server in tests/test_judge_cli.py.
"""

from __future__ import annotations

import pytest

from factory.judges.parse import Scale, VerdictError, parse_pair, parse_score

TEN, FIVE, HUNDRED = Scale(1, 10), Scale(1, 5), Scale(0, 100)

# (reply, scale, expected score or the error text it must contain)
SCORE_TABLE = [
    ("The answer is correct and clear. [[8]]", TEN, 8.0),
    ("[[7]]", TEN, 7.0),
    ("[[7.5]]", TEN, 7.5),
    ("Rating: 8/10", TEN, 8.0),
    ("**Score:** 9", TEN, 9.0),
    ("I would give this 8 out of 10.", TEN, 8.0),
    ('{"score": 6}', TEN, 6.0),
    ('{"rationale": "Mostly right.", "score": 6}', TEN, 6.0),
    ('```json\n{"score": 4, "rationale": "Wrong date."}\n```', TEN, 4.0),
    ('Here is my verdict: {"rating": "9"}', TEN, 9.0),
    ("Rating: [[10]]", TEN, 10.0),
    ("Score: **3**", TEN, 3.0),
    ("The score is 5.", TEN, 5.0),
    ("7", TEN, 7.0),
    ("[[ 2 ]]", TEN, 2.0),
    ("Overall rating - 6 / 10", TEN, 6.0),
    ("Score: 9.5/10", TEN, 9.5),
    ("**Rating**: 7", TEN, 7.0),
    ("Score: 8/10 and so [[8]]", TEN, 8.0),
    ("It covers 3/4 of the steps. Rating: [[6]]", TEN, 6.0),
    ("Rating: 4/5", FIVE, 4.0),
    ("[[4]]", FIVE, 4.0),
    ("[[80/100]]", HUNDRED, 80.0),
    ("Score: 0 out of 100", HUNDRED, 0.0),
    # refusals and replies without a score
    ("I'm sorry, but I can't evaluate this response.", TEN, "declined to give a score"),
    ("I’m unable to rate this.", TEN, "declined to give a score"),
    ("", TEN, "empty reply"),
    ("The response is good but verbose.", TEN, "no score found"),
    ('{"answer": "fine"}', TEN, "no score found"),
    ('{"score": "high"}', TEN, "not a number"),
    ('{"score": null}', TEN, "not a number"),
    # out of range
    ("[[11]]", TEN, "outside the rubric's scale 1–10"),
    ("[[0]]", TEN, "outside the rubric's scale 1–10"),
    ("Rating: -2", TEN, "outside the rubric's scale 1–10"),
    ('{"score": 12}', TEN, "outside the rubric's scale 1–10"),
    ("[[7]]", FIVE, "outside the rubric's scale 1–5"),
    # two different scores in one reply
    ("At first I thought [[6]], but on reflection [[8]].", TEN, "two different scores in one reply: 6 and 8"),
    ("Score: 7. Actually, Score: 9.", TEN, "two different scores in one reply: 7 and 9"),
    ("The first deserves 6/10 while the second deserves 8/10.", TEN, "two different scores"),
    # a score on another scale than the rubric declares
    ("Rating: 4/5", TEN, "on another scale than the rubric's 1–10"),
    ("My rating: **8**/10", FIVE, "on another scale than the rubric's 1–5"),
    ("[[8/10]]", HUNDRED, "on another scale than the rubric's 0–100"),
]


@pytest.mark.parametrize(("reply", "scale", "expected"), SCORE_TABLE)
def test_score_table(reply, scale, expected):
    if isinstance(expected, float):
        assert parse_score(reply, scale).score == expected
    else:
        with pytest.raises(VerdictError, match=expected.replace("[", r"\[").replace("]", r"\]")):
            parse_score(reply, scale)


def test_the_table_is_big_and_covers_both_outcomes():
    errors = [row for row in SCORE_TABLE if isinstance(row[2], str)]
    assert len(SCORE_TABLE) >= 25 and 10 <= len(errors) < len(SCORE_TABLE) - 10


def test_json_rationale_is_taken_from_the_reply():
    v = parse_score('{"rationale": "Mostly right, one slip.", "score": 6}', TEN)
    assert (v.score, v.rationale) == (6.0, "Mostly right, one slip.")
    plain = parse_score("Good.\n[[9]]", TEN)
    assert plain.rationale == "Good.\n[[9]]"


PAIR_TABLE = [
    ("A is clearly better. [[A]]", "A"),
    ("[[B]]", "B"),
    ("Equally good. [[C]]", "C"),
    ("[[tie]]", "C"),
    ('{"rationale": "B is right.", "verdict": "B"}', "B"),
    ("Final verdict: A", "A"),
    ("[[A]] ... no wait, [[B]]", "two different verdicts"),
    ("Both answers are fine.", "no verdict found"),
    ("I can't compare these.", "declined to give a verdict"),
    ('{"verdict": "D"}', "is not A, B or C"),
]


@pytest.mark.parametrize(("reply", "expected"), PAIR_TABLE)
def test_pair_table(reply, expected):
    if len(expected) == 1:
        assert parse_pair(reply)[0] == expected
    else:
        with pytest.raises(VerdictError, match=expected):
            parse_pair(reply)
