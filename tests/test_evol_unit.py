"""Evol-Instruct's pieces: every elimination rule and every evolution operation's prompt."""

from __future__ import annotations

import pytest

from factory.schemes.base import parse_list, strip_label
from factory.schemes.evol_instruct import DEPTH, OPERATIONS, EvolConfig, EvolInstruct
from factory.schemes.evol_instruct.elimination import (
    cannot_answer,
    copies_prompt_words,
    eliminate,
    no_information_gain,
    only_stop_words,
)

PARENT = "Explain why the sky is blue."
GOOD_CHILD = "Explain why the sky is blue at noon but red at sunset, using the idea of Rayleigh scattering."
GOOD_ANSWER = "Sunlight scatters off air molecules; shorter blue wavelengths scatter most. " * 3


@pytest.mark.parametrize("child,expected", [
    (PARENT, True),
    ("explain WHY the sky is blue!", True),
    ("Why is the sky blue? Explain.", True),
    ("", True),
    (GOOD_CHILD, False),
])
def test_no_information_gain(child, expected):
    assert no_information_gain(PARENT, child) is expected


@pytest.mark.parametrize("response,expected", [
    ("Sorry, I cannot help with that.", True),
    ("I'm SORRY but this is impossible to answer.", True),
    ("sorry " + "word " * 90, False),  # long answers that apologise once are fine
    (GOOD_ANSWER, False),
])
def test_cannot_answer(response, expected):
    assert cannot_answer(response) is expected


@pytest.mark.parametrize("response,expected", [
    ("...!!", True),
    ("It is what it is.", True),
    ("", True),
    ("Blue light scatters more.", False),
])
def test_only_stop_words(response, expected):
    assert only_stop_words(response) is expected


@pytest.mark.parametrize("child,expected", [
    ("#Rewritten Prompt#: Explain the sky.", True),
    ("Based on the given prompt, explain the sky.", True),
    ("Here is the created prompt: explain tides.", True),
    (GOOD_CHILD, False),
])
def test_copies_prompt_words(child, expected):
    assert copies_prompt_words(child) is expected


def test_eliminate_names_the_first_rule_broken():
    assert eliminate(PARENT, GOOD_CHILD, GOOD_ANSWER) is None
    assert eliminate(PARENT, PARENT, GOOD_ANSWER) == "no_information_gain"
    assert eliminate(PARENT, GOOD_CHILD, "Sorry, no.") == "cannot_answer"
    assert eliminate(PARENT, GOOD_CHILD, "it is.") == "only_stop_words"
    assert eliminate(PARENT, "#Rewritten Prompt# " + GOOD_CHILD, GOOD_ANSWER) == "copies_prompt_words"


@pytest.mark.parametrize("operation,marker", [
    ("add_constraints", "one more constraint"),
    ("deepening", "widen and deepen"),
    ("concretizing", "more specific, concrete"),
    ("increase_reasoning", "reasoning in several steps"),
    ("complicate_input", "structured format"),
    ("breadth", "same domain"),
])
def test_each_operation_prompt(operation, marker):
    prompt = EvolInstruct().evolve_prompt(operation, "Name three rivers in Africa.")
    assert marker in prompt
    assert prompt.count("Name three rivers in Africa.") == 1
    label = "#Created Prompt#:" if operation == "breadth" else "#Rewritten Prompt#:"
    assert prompt.rstrip().endswith(label)
    others = [m for op, m in [("add_constraints", "one more constraint"), ("deepening", "widen and deepen")]
              if op != operation]
    assert all(m not in prompt for m in others)


def test_operation_set_matches_the_paper():
    assert set(DEPTH) == {"add_constraints", "deepening", "concretizing", "increase_reasoning", "complicate_input"}
    assert set(OPERATIONS) == set(DEPTH) | {"breadth"}
    assert EvolConfig().rounds == 4


def test_changing_a_prompt_changes_the_version():
    from factory.store.manifest import version_id

    stage = EvolInstruct()
    prompts = stage.prompt_templates()
    a = version_id(stage.info(), stage.recipe(), [], prompts)
    edited = {**prompts, "deepening.jinja": prompts["deepening.jinja"] + " "}
    assert version_id(stage.info(), stage.recipe(), [], edited) != a


def test_reply_parsers():
    assert parse_list("Sure!\n1. Write a poem about rain.\n2) Explain how tides work.\n- List three fruits please\n"
                      "3. Yes") == ["Write a poem about rain.", "Explain how tides work.", "List three fruits please"]
    assert parse_list("no list here") == []
    assert strip_label("#Rewritten Prompt#: Do X now.", ("#Rewritten Prompt#",)) == "Do X now."
