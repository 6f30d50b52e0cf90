"""Evol-Instruct's elimination step: which evolutions to throw away (WizardLM, section 3.2).

An evolution fails when
1. it brings no information gain over its parent (the same instruction, or the same words reshuffled);
2. the teacher's response shows it could not answer: it says "sorry" and is short (under 80 words);
3. the response is only punctuation and stop words;
4. the evolved instruction copies words of the evolving prompt itself ("#Rewritten Prompt#", "given prompt").
The paper checks rule 1 with an LLM; we use a word-level test that needs no call.
"""

from __future__ import annotations

import re

STOP_WORDS = frozenset(
    "a an the and or but if then so of to in on at by for with from as is are was were be been being it its this "
    "that these those i you he she we they me him her us them my your our their what which who whom whose when "
    "where why how not no yes do does did done have has had can could will would shall should may might must "
    "there here all any some such very just also than too ok okay".split()
)
LEAKED = ("given prompt", "rewritten prompt", "created prompt", "#the given prompt#", "#rewritten prompt#")
_WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    return _WORD.findall((text or "").lower())


def no_information_gain(parent: str, child: str) -> bool:
    pw, cw = words(parent), words(child)
    if not cw or pw == cw:
        return True
    a, b = set(pw), set(cw)
    overlap = len(a & b) / len(a | b)
    return overlap >= 0.9 and len(cw) <= len(pw) + 2


def cannot_answer(response: str) -> bool:
    return "sorry" in (response or "").lower() and len(words(response)) < 80


def only_stop_words(response: str) -> bool:
    return all(w in STOP_WORDS for w in words(response))


def copies_prompt_words(child: str) -> bool:
    lowered = (child or "").lower()
    return any(leak in lowered for leak in LEAKED)


RULES = {
    "no_information_gain": lambda parent, child, response: no_information_gain(parent, child),
    "cannot_answer": lambda parent, child, response: cannot_answer(response),
    "only_stop_words": lambda parent, child, response: only_stop_words(response),
    "copies_prompt_words": lambda parent, child, response: copies_prompt_words(child),
}


def eliminate(parent: str, child: str, response: str) -> str | None:
    """The first rule the evolution breaks, or None when it survives."""
    for name, rule in RULES.items():
        if rule(parent, child, response):
            return name
    return None
