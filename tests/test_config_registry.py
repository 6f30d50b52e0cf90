"""Configs (`extra="forbid"`, YAML + --set) and plugin registries."""

from __future__ import annotations

import pytest

from factory.config import StrictModel, build_config, parse_sets
from factory.errors import BadInput, FactoryError
from factory.pipeline import Paper, Stage
from factory.registry import Registry
from factory.secrets import redact, scrub


class Inner(StrictModel):
    depth: int = 2


class Cfg(StrictModel):
    rounds: int = 4
    name: str = "x"
    inner: Inner = Inner()


def test_yaml_then_sets(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("rounds: 2\ninner:\n  depth: 5\n")
    cfg = build_config(Cfg, f, ["name=hello", "inner.depth=7"])
    assert (cfg.rounds, cfg.name, cfg.inner.depth) == (2, "hello", 7)


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(BadInput, match="unknown key 'roundz'"):
        build_config(Cfg, None, ["roundz=3"])
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  deep: 1\n")
    with pytest.raises(BadInput, match="unknown key 'inner.deep'"):
        build_config(Cfg, f)
    with pytest.raises(BadInput, match="rounds"):
        build_config(Cfg, None, ["rounds=many"])
    with pytest.raises(BadInput, match="key=value"):
        parse_sets(["novalue"])
    f.write_text("a: [1\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        build_config(Cfg, f)


def test_counts_are_not_secrets():
    from factory.secrets import is_secret_key

    for key in ("max_tokens", "prompt_tokens", "completion_tokens", "evolve_max_tokens", "tokens", "keys", "sort_key",
                "key_column"):
        assert not is_secret_key(key), key
    for key in ("api_key", "OPENAI_API_KEY", "hf_token", "token", "access-token", "client_secret", "password",
                "authorization", "apikey", "key", "aws_secret_key", "access_key"):
        assert is_secret_key(key), key


def test_redaction(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-123456")
    red = redact({"api_key": "sk-x", "llm": {"hf_token": "hf_y"}, "note": "uses sk-live-123456", "n": 3})
    assert red == {"api_key": "***", "llm": {"hf_token": "***"}, "note": "uses ***", "n": 3}
    assert scrub("Bearer sk-live-123456 failed") == "Bearer *** failed"


def test_registry_rejects_duplicates_and_lists():
    reg = Registry("scheme", "factory.tests.none")

    @reg.register
    class A(Stage):
        """Makes things."""

        kind = "scheme"
        name = "a"
        paper = Paper(title="A paper", url="https://arxiv.org/abs/0000.00000")
        inputs = {"instruction": "str"}
        Config = Cfg

    assert reg.names() == ["a"] and reg.get("a") is A
    with pytest.raises(FactoryError, match="two schemes named 'a'"):
        @reg.register
        class B(Stage):
            name = "a"
    with pytest.raises(BadInput, match=r"unknown scheme 'zzz' \(known: a\)"):
        reg.get("zzz")
    d = A.describe()
    assert d["config"]["rounds"]["default"] == 4 and d["inputs"] == {"instruction": "str"}
    with pytest.raises(BadInput, match="lacks column instruction"):
        A.check_inputs(["text"], "seed data")
