"""Post-processing stages: exact and near dedup, and row filters, with known answers."""

from __future__ import annotations

import numpy as np
import polars as pl

from factory.pipeline.dedup import dedup_exact, dedup_near
from factory.pipeline.filters import apply_filters, detect_language
from factory.pipeline.minhash import bands_for, components, near_duplicates
from factory.store import Store
from tests.helpers import run_factory, write_jsonl

BASE = ("Explain how a refrigerator keeps food cold by moving heat from the inside to the outside using a "
        "compressor and a refrigerant that changes between liquid and gas")


def rows():
    return [
        {"id": "a", "instruction": BASE, "input": ""},
        {"id": "b", "instruction": BASE.upper() + "!!", "input": ""},  # exact after normalisation
        {"id": "c", "instruction": BASE.replace("food cold", "food chilled"), "input": ""},  # near
        {"id": "d", "instruction": "Write a limerick about a cat who learns to play the trumpet at night.",
         "input": ""},
        {"id": "e", "instruction": BASE, "input": "Use the example of a kitchen fridge in a hot summer, name each "
                                                "part, and say which one uses the most electricity."},  # not a dup
        {"id": "f", "instruction": "Name the largest planet in our solar system and one of its moons.", "input": ""},
    ]


def test_exact_dedup_normalises_text():
    df = pl.DataFrame(rows())
    out, counts = dedup_exact(df, ["instruction", "input"])
    assert out["id"].to_list() == ["a", "c", "d", "e", "f"]
    assert counts == {"dropped": 1, "exact_duplicates": 1}


def test_near_dedup_finds_the_near_copy_only():
    df = pl.DataFrame(rows())
    out, counts = dedup_near(df, ["instruction", "input"], threshold=0.7, num_perm=128, shingle=3)
    assert out["id"].to_list() == ["a", "d", "e", "f"]
    assert counts == {"dropped": 2, "exact_duplicates": 1, "near_duplicates": 1}


def test_near_dedup_on_many_rows_with_planted_copies():
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(3000)])
    texts = [" ".join(rng.choice(vocab, 40)) for _ in range(2000)]
    planted = []
    for i in range(0, 2000, 100):  # 20 near copies: one word of 40 replaced
        words = texts[i].split()
        words[7] = "changed"
        planted.append(len(texts))
        texts.append(" ".join(words))
    drop = near_duplicates(pl.Series(texts), threshold=0.7)  # planted pairs have Jaccard ~0.85
    assert set(np.flatnonzero(drop)) == set(planted)


def test_components_and_band_choice():
    edges = np.array([[0, 1], [1, 2], [4, 5]])
    assert components(6, edges).tolist() == [0, 0, 0, 3, 4, 4]
    b, r = bands_for(0.8, 64)
    assert b * r == 64 and abs((1 / b) ** (1 / r) - 0.8) < 0.1


def test_filters_count_each_reason():
    df = pl.DataFrame({
        "response": ["The cat sat on the mat and it was happy there.", "Le chat est sur la table et il dort bien.",
                     "As an AI language model, I cannot help with that request at all.", "Yes.", None],
        "error": [None, None, None, None, "timeout"],
    })
    assert detect_language(df["response"]).to_list() == ["en", "fr", "en", "", ""]
    out, counts = apply_filters(df, "response", 3, 50, ["en"], True)
    assert out["response"].to_list() == ["The cat sat on the mat and it was happy there."]
    assert counts == {"dropped": 4, "too_short": 2, "too_long": 0, "refusal": 1, "wrong_language": 1,
                      "failed_call": 0}


def test_dedup_and_filter_through_the_cli(tmp_path):
    home = tmp_path / "home"
    ref = run_factory("datasets", "import", str(write_jsonl(tmp_path / "r.jsonl", rows())), "--name", "r",
                      home=home).stdout.strip()
    exact = run_factory("dedup", "r", home=home)
    assert exact.returncode == 0, exact.stderr
    near = run_factory("dedup", "r", "--near", "--threshold", "0.7", "--num-perm", "128", "--name", "r-near",
                       home=home)
    store = Store(home)
    v = store.resolve(near.stdout.strip())
    assert v.read()["id"].to_list() == ["a", "d", "e", "f"]
    assert v.manifest.counters == {"kept": 4, "dropped": 2, "exact_duplicates": 1, "near_duplicates": 1}
    assert v.manifest.inputs[0].ref() == ref and v.manifest.stage.name == "dedup-near"
    again = run_factory("dedup", "r", "--near", "--threshold", "0.7", "--num-perm", "128", "--name", "r-near",
                        home=home)
    assert again.stdout.strip() == v.ref and "unchanged" in again.stderr
    filtered = run_factory("filter", "r-near", "--column", "instruction", "--min-words", "15", home=home)
    f = store.resolve(filtered.stdout.strip())
    assert f.read()["id"].to_list() == ["a", "e"] and f.manifest.counters["too_short"] == 2
    bad = run_factory("dedup", "r", "--columns", "nope", home=home)
    assert bad.returncode == 2 and "--columns: no column 'nope'" in bad.stderr
    bad = run_factory("filter", "r", "--column", "instruction", "--language", "xx", home=home)
    assert bad.returncode == 2 and "--language 'xx'" in bad.stderr


def test_semantic_dedup_with_the_installed_embedding_model(tmp_path):
    texts = ["How do I bake a loaf of sourdough bread at home?",
             "What is the way to make sourdough bread in my own kitchen?",  # paraphrase of 0
             "Explain how vaccines train the immune system.",
             "Describe how a vaccine teaches the body's immune system to fight disease.",  # paraphrase of 2
             "Write a haiku about autumn leaves.", "What is the capital city of Australia?"]
    home = tmp_path / "home"
    rows = [{"id": str(i), "instruction": t} for i, t in enumerate(texts)]
    run_factory("datasets", "import", str(write_jsonl(tmp_path / "s.jsonl", rows)), "--name", "s", home=home)
    r = run_factory("dedup", "s", "--semantic", "--threshold", "0.8", "--columns", "instruction", home=home)
    assert r.returncode == 0, r.stderr
    v = Store(home).resolve(r.stdout.strip())
    assert v.read()["id"].to_list() == ["0", "2", "4", "5"]
    assert v.manifest.counters["semantic_duplicates"] == 2 and v.manifest.stage.name == "dedup-semantic"
    strict = run_factory("dedup", "s", "--semantic", "--columns", "instruction", "--name", "s-strict", home=home)
    assert Store(home).resolve(strict.stdout.strip()).manifest.rows == 6  # default 0.92 keeps paraphrases
    both = run_factory("dedup", "s", "--semantic", "--near", home=home)
    assert both.returncode == 2 and "choose one of --near and --semantic" in both.stderr
