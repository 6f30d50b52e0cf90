"""Answer checkers for self-distillation: does a rewrite still reach the reference's final answer?

A checker extracts the final answer of a text; a rewrite whose answer differs from the original's is
replaced by the original (SDFT). A text whose answer cannot be extracted is not checkable, and the rewrite
is kept. New checkers register in `CHECKERS` with `@checker("name")`.

- `numbers`: the final number (GSM8k's `#### 42`, "the answer is 42", else the last number in the text)
- `choices`: the chosen option letter ("Answer: B", "(B)", "the answer is B", or a lone letter)
- `code`: the fenced code blocks; the rewrite must still hold code that parses (Python is compiled, never run)
- `none`: nothing is checked; the rewrite is always kept
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

# name -> extract(text) -> the final answer, or None where the text has none
CHECKERS: dict[str, Callable[[str], str | None]] = {}

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_GSM = re.compile(rf"####\s*\$?\s*({_NUMBER})")
_ANSWER_IS = re.compile(rf"answer\s*(?:is|:)\s*\**\s*\$?\s*({_NUMBER})", re.IGNORECASE)
_ANY_NUMBER = re.compile(_NUMBER)
_CHOICE_AFTER_ANSWER = re.compile(r"(?i:answer)\s*(?i:is|:)?\s*:?\s*\(?\**([A-E])\b")
_CHOICE_IN_PARENS = re.compile(r"\(([A-E])\)")
_LONE_CHOICE = re.compile(r"^\s*\(?([A-E])\)?[.:)]?\s*$")
_FENCE = re.compile(r"```([\w+-]*)\n(.*?)```", re.DOTALL)


def checker(name: str) -> Callable:
    def register(fn: Callable[[str], str | None]) -> Callable[[str], str | None]:
        if name in CHECKERS:
            raise ValueError(f"two answer checkers named {name!r}")
        CHECKERS[name] = fn
        return fn

    return register


def _number(text: str) -> str:
    value = float(text.replace(",", ""))
    return str(int(value)) if value.is_integer() else repr(value)


@checker("numbers")
def final_number(text: str) -> str | None:
    for pattern in (_GSM, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            return _number(found[-1])
    found = _ANY_NUMBER.findall(text)
    return _number(found[-1]) if found else None


@checker("choices")
def final_choice(text: str) -> str | None:
    for pattern in (_CHOICE_AFTER_ANSWER, _CHOICE_IN_PARENS):
        found = pattern.findall(text)
        if found:
            return found[-1]
    for line in reversed(text.strip().splitlines()):
        m = _LONE_CHOICE.match(line)
        if m:
            return m.group(1)
    return None


@checker("code")
def code_blocks(text: str) -> str | None:
    """"ok" when the text has fenced code and all of it parses; "broken" when some does not; None without code."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return None
    for lang, body in blocks:
        if lang.lower() in ("", "python", "py", "python3"):
            try:
                ast.parse(body)
            except SyntaxError:
                return "broken"
    return "ok"


@checker("none")
def nothing(text: str) -> str | None:
    return None


def verdict(name: str, original: str, rewrite: str) -> str:
    """"same", "changed" (the rewrite's final answer differs) or "unchecked" (the original has no answer)."""
    extract = CHECKERS[name]
    reference = extract(original)
    if reference is None:
        return "unchecked"
    if name == "code":  # code must still be there and still parse, whatever the original's blocks say
        return "same" if extract(rewrite) == "ok" else "changed"
    return "same" if extract(rewrite) == reference else "changed"
