"""Write the shipped arithmetic word-problem seeds: factory/data/seeds/math_sft.jsonl and math_heldout.jsonl.

Small one- and two-step problems with a short worked answer ending in "The answer is N." (GSM8k-style, but
written here from templates; nothing copied). The held-out set uses the same templates with other numbers and
names, and no question of it appears in the training set. Rerunning writes the same files (seeded).

    python scripts/make_math_seeds.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEEDS = Path(__file__).resolve().parents[1] / "factory" / "data" / "seeds"
NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mateo",
         "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara"]
ITEMS = ["apple", "pencil", "marble", "sticker", "book", "cookie", "shell", "coin", "card", "balloon"]


def problem(rng: random.Random) -> tuple[str, str, int]:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    kind = rng.choice(["add", "sub", "mul", "div", "two"])
    if kind == "add":
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        return (f"{name} has {a} {item}s and gets {b} more. How many {item}s does {name} have now?",
                f"{name} starts with {a} {item}s and gets {b} more, so {a} + {b} = {a + b}. The answer is {a + b}.",
                a + b)
    if kind == "sub":
        a = rng.randint(10, 50)
        b = rng.randint(1, a - 1)
        return (f"{name} had {a} {item}s and gave {b} of them away. How many {item}s does {name} have left?",
                f"{name} had {a} {item}s and gave away {b}, so {a} - {b} = {a - b}. The answer is {a - b}.", a - b)
    if kind == "mul":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        return (f"A box holds {a} {item}s. How many {item}s are in {b} boxes?",
                f"Each box holds {a} {item}s, so {b} boxes hold {b} x {a} = {a * b}. The answer is {a * b}.", a * b)
    if kind == "div":
        b, each = rng.randint(2, 9), rng.randint(2, 9)
        a = b * each
        return (f"{name} shares {a} {item}s equally among {b} friends. How many {item}s does each friend get?",
                f"{a} {item}s shared among {b} friends is {a} / {b} = {each} each. The answer is {each}.", each)
    a, b = rng.randint(2, 6), rng.randint(2, 9)
    c = rng.randint(1, a * b - 1)
    total = a * b
    return (f"{name} buys {a} packs of {b} {item}s and then loses {c} of them. How many {item}s are left?",
            f"{a} packs of {b} {item}s make {a} x {b} = {total}. After losing {c}, {total} - {c} = {total - c} are "
            f"left. The answer is {total - c}.", total - c)


def rows(rng: random.Random, n: int, prefix: str, avoid: set[str]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen = set(avoid)
    while len(out) < n:
        question, answer, value = problem(rng)
        if question in seen:
            continue
        seen.add(question)
        out.append({"id": f"{prefix}-{len(out) + 1:04d}", "instruction": question, "response": answer,
                    "answer": str(value)})
    return out


def main() -> None:
    train = rows(random.Random(2410), 320, "math-sft", set())
    heldout = rows(random.Random(9982), 60, "math-heldout", {r["instruction"] for r in train})
    for name, data in (("math_sft", train), ("math_heldout", heldout)):
        path = SEEDS / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data), encoding="utf-8")
        print(f"{path}: {len(data)} rows")


if __name__ == "__main__":
    main()
