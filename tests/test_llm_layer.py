"""The LLM layer through the real `openai` and `anthropic` SDKs, against stub servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from factory.errors import BadInput, FactoryError
from factory.llm import ChatRequest, load_llm
from factory.llm.limits import Bucket
from factory.llm.runner import BudgetExhausted, RunAborted
from factory.testing.llm_stub import StubLLMServer, count_tokens


def reqs(n: int, max_tokens: int = 20, prefix: str = "question") -> list[ChatRequest]:
    return [ChatRequest(messages=[{"role": "user", "content": f"{prefix} number {i} about llamas"}],
                        max_tokens=max_tokens, meta={"i": i}) for i in range(n)]


@pytest.fixture
def openai_env(monkeypatch):
    def point(stub: StubLLMServer) -> None:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.anthropic_base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    return point


def llm_for(stub, openai_env, tmp_path, spec="openai:stub-model", **settings):
    openai_env(stub)
    settings.setdefault("progress", False)
    settings.setdefault("backoff_base_s", 0.01)
    return load_llm(spec, home=tmp_path / "home", **settings)


def test_success_usage_and_cost_add_up(tmp_path, openai_env):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.yaml").write_text("prices:\n  stub-model: {input: 2.0, output: 8.0}\n")
    with StubLLMServer() as stub:
        llm = llm_for(stub, openai_env, tmp_path, concurrency=8)
        out = llm.generate_sync(reqs(30))
        s = stub.stats()
    assert all(c.error is None for c in out) and len(out) == 30
    assert out[3].text.endswith("question number 3 about llamas")  # in request order
    assert out[0].prompt_tokens == count_tokens("question number 0 about llamas")
    assert llm.stats.prompt_tokens == s["prompt_tokens"] and llm.stats.completion_tokens == s["completion_tokens"]
    expected = (s["prompt_tokens"] * 2.0 + s["completion_tokens"] * 8.0) / 1e6
    assert llm.stats.usd == pytest.approx(expected) and sum(c.cost_usd for c in out) == pytest.approx(expected)
    assert s["max_in_flight"] <= 8


def test_cache_makes_a_rerun_free_and_refresh_asks_again(tmp_path, openai_env):
    with StubLLMServer() as stub:
        first = llm_for(stub, openai_env, tmp_path).generate_sync(reqs(20))
        again = llm_for(stub, openai_env, tmp_path)
        second = again.generate_sync(reqs(25))
        assert stub.stats()["requests"] == 25 and again.stats.cached == 20
        assert [c.text for c in second[:20]] == [c.text for c in first]
        llm_for(stub, openai_env, tmp_path, refresh=True).generate_sync(reqs(5))
        assert stub.stats()["requests"] == 30
        llm_for(stub, openai_env, tmp_path, cache=False).generate_sync(reqs(5))
        assert stub.stats()["requests"] == 35


def test_429_with_retry_after_is_retried_and_honoured(tmp_path, openai_env):
    with StubLLMServer(script=["429"], retry_after="0.2") as stub:
        llm = llm_for(stub, openai_env, tmp_path)
        out = llm.generate_sync(reqs(10))
        s = stub.stats()
    assert all(c.ok for c in out)
    assert s["by_status"] == {"429": 10, "200": 10} and llm.stats.retries == 10


@pytest.mark.parametrize("fault", ["500", "503", "malformed", "timeout"])
def test_transient_faults_are_retried(tmp_path, openai_env, fault):
    with StubLLMServer(script=[fault], hang_s=5) as stub:
        llm = llm_for(stub, openai_env, tmp_path, timeout_s=0.5)
        out = llm.generate_sync(reqs(6))
        s = stub.stats()
    assert all(c.ok for c in out), [c.error for c in out]
    assert s["ok_by_key"] and all(v == 1 for v in s["ok_by_key"].values())
    assert llm.stats.retries == 6 and s["requests"] == 12


def test_400_is_not_retried_and_the_row_is_kept_with_its_error(tmp_path, openai_env):
    with StubLLMServer(script=["400"], fault_match="number 3 ") as stub:
        llm = llm_for(stub, openai_env, tmp_path)
        out = llm.generate_sync(reqs(8))
        assert stub.stats()["requests"] == 8
    assert out[3].error and "400" in out[3].error and not out[3].texts
    assert all(c.ok for i, c in enumerate(out) if i != 3) and llm.stats.failed == 1


def test_exhausted_retries_keep_the_row(tmp_path, openai_env):
    with StubLLMServer(script=["500"] * 10, fault_match="number 2 ") as stub:
        llm = llm_for(stub, openai_env, tmp_path, max_retries=2)
        out = llm.generate_sync(reqs(5))
        assert stub.stats()["by_key"] and max(stub.stats()["by_key"].values()) == 3
    assert out[2].error and "500" in out[2].error and sum(c.ok for c in out) == 4


def test_bad_key_stops_the_run_at_once(tmp_path, openai_env, monkeypatch):
    with StubLLMServer() as stub:
        llm = llm_for(stub, openai_env, tmp_path, concurrency=4)
        monkeypatch.setenv("OPENAI_API_KEY", "bad-key")
        llm = load_llm("openai:stub-model", home=tmp_path / "home", concurrency=4, progress=False)
        with pytest.raises(RunAborted, match="authentication failed") as info:
            llm.generate_sync(reqs(200))
        assert "bad-key" not in str(info.value)
        assert stub.stats()["requests"] <= 8  # the in-flight wave, not the dataset
    conn = sqlite3.connect(tmp_path / "home" / "cache" / "llm.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0  # nothing marked done


def test_missing_model_stops_the_run(tmp_path, openai_env):
    with StubLLMServer() as stub:
        llm = llm_for(stub, openai_env, tmp_path, spec="openai:missing-model", concurrency=2)
        with pytest.raises(RunAborted, match="not found"):
            llm.generate_sync(reqs(50))
        assert stub.stats()["requests"] <= 4


def test_circuit_breaker_stops_a_failing_run(tmp_path, openai_env):
    with StubLLMServer(rate_500=1.0) as stub:
        llm = llm_for(stub, openai_env, tmp_path, concurrency=4, max_retries=0)
        with pytest.raises(RunAborted, match="of the last .* calls failed"):
            llm.generate_sync(reqs(300))
        assert stub.stats()["requests"] < 40


def test_budget_is_a_hard_cap(tmp_path, openai_env):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.yaml").write_text("prices:\n  stub-model: {input: 1000.0, output: 1000.0}\n")
    with StubLLMServer() as stub:
        llm = llm_for(stub, openai_env, tmp_path, budget_usd=0.5, concurrency=4)
        with pytest.raises(BudgetExhausted, match=r"rerun with a higher --budget"):
            llm.generate_sync(reqs(100))
        spent = llm.stats.usd
        s = stub.stats()
        assert 0 < spent <= 0.5 and 0 < s["requests"] < 100
        assert spent == pytest.approx((s["prompt_tokens"] + s["completion_tokens"]) * 1000 / 1e6)
        # the rerun with more budget pays only for what is missing
        more = llm_for(stub, openai_env, tmp_path, budget_usd=100)
        out = more.generate_sync(reqs(100))
        assert all(c.ok for c in out) and more.stats.cached == llm.stats.answered
        assert stub.stats()["requests"] == 100


def test_budget_needs_a_price(tmp_path, openai_env):
    with StubLLMServer() as stub:
        llm = llm_for(stub, openai_env, tmp_path, budget_usd=1.0)
        with pytest.raises(BadInput, match="no price is known"):
            llm.generate_sync(reqs(2))
        assert stub.stats()["requests"] == 0


def test_unreachable_server_fails_fast(tmp_path, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    llm = load_llm("openai:m", home=tmp_path / "home", progress=False, backoff_base_s=0.01)
    with pytest.raises(RunAborted, match="cannot connect"):
        llm.generate_sync(reqs(50))


def test_anthropic_sdk(tmp_path, openai_env):
    with StubLLMServer(script=["429", "ok"], retry_after="0.1") as stub:
        llm = llm_for(stub, openai_env, tmp_path, spec="anthropic:claude-test")
        out = llm.generate_sync([ChatRequest(messages=[{"role": "user", "content": "hello there"}], system="Be kind.",
                                             n=2, temperature=1.0)])
        s = stub.stats()
    assert len(out[0].texts) == 2 and out[0].texts[0].startswith("stub answer")
    assert s["by_api"].get("anthropic") == 4  # n=2 is two calls, each 429 once
    assert out[0].prompt_tokens == 2 * count_tokens("Be kind. hello there")


@pytest.mark.parametrize("spec,message", [
    ("nonsense", "unknown LLM 'nonsense'"),
    ("foo:bar", "unknown LLM provider 'foo'"),
    ("openai:", "names no model"),
])
def test_bad_specs(spec, message, tmp_path):
    with pytest.raises(BadInput, match=message):
        load_llm(spec, home=tmp_path)


def test_missing_api_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    # loading needs no key (a dry run estimates without one); the first call says which one is missing
    for spec, var in (("gpt4", "OPENAI_API_KEY"), ("claude", "ANTHROPIC_API_KEY")):
        llm = load_llm(spec, home=tmp_path)
        assert llm.estimate([ChatRequest(messages=[{"role": "user", "content": "hi"}])])["requests"] == 1
        with pytest.raises(FactoryError, match=f"set {var}"):
            llm.generate_sync([ChatRequest(messages=[{"role": "user", "content": "hi"}])])


def test_user_aliases(tmp_path, openai_env):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.yaml").write_text("aliases:\n  teacher: openai:stub-model\n")
    with StubLLMServer() as stub:
        llm = llm_for(stub, openai_env, tmp_path, spec="teacher")
        assert llm.spec == "openai:stub-model" and llm.generate_sync(reqs(1))[0].ok
    (tmp_path / "home" / "config.yaml").write_text("alias:\n  x: y\n")
    with pytest.raises(BadInput, match="unknown key 'alias'"):
        load_llm("gpt4", home=tmp_path / "home")


def test_token_bucket_paces_requests():
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def scenario() -> None:
        bucket = Bucket(per_minute=120, clock=lambda: now[0], sleep=fake_sleep)  # 2 a second
        for _ in range(6):
            await bucket.take(1)

    asyncio.run(scenario())
    assert now[0] == pytest.approx(2.0)  # starts with a second's worth (2), then 2 a second
    assert all(s > 0 for s in slept)


@pytest.mark.parametrize("fault", ["429", "500", "malformed"])
def test_http_transport_speaks_the_same_protocol(tmp_path, openai_env, fault):
    with StubLLMServer(script=[fault], retry_after="0.1") as stub:
        openai_env(stub)
        llm = load_llm("openai:stub-model", home=tmp_path / "home", progress=False, backoff_base_s=0.01,
                       provider_options={"transport": "http"})
        out = llm.generate_sync(reqs(5))
        s = stub.stats()
    assert all(c.ok for c in out) and out[2].text.endswith("question number 2 about llamas")
    assert s["requests"] == 10 and llm.stats.prompt_tokens == s["prompt_tokens"]


def test_http_transport_bad_key_and_missing_model(tmp_path, openai_env, monkeypatch):
    with StubLLMServer() as stub:
        openai_env(stub)
        monkeypatch.setenv("OPENAI_API_KEY", "bad-key")
        llm = load_llm("openai:stub-model", home=tmp_path, progress=False, provider_options={"transport": "http"})
        with pytest.raises(RunAborted, match="authentication failed"):
            llm.generate_sync(reqs(20))
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        llm = load_llm("openai:missing-x", home=tmp_path, progress=False, provider_options={"transport": "http"})
        with pytest.raises(RunAborted, match="not found"):
            llm.generate_sync(reqs(20))


def test_gate_lets_retries_jump_the_queue_and_survives_cancellation():
    from factory.llm.limits import Gate

    async def scenario() -> list[str]:
        gate, order = Gate(1), []
        await gate.acquire()

        async def waiter(name: str, urgent: bool) -> None:
            await gate.acquire(urgent=urgent)
            order.append(name)
            gate.release()

        first = asyncio.create_task(waiter("first attempt", False))
        doomed = asyncio.create_task(waiter("cancelled", False))
        await asyncio.sleep(0)
        retry = asyncio.create_task(waiter("retry", True))
        await asyncio.sleep(0)
        doomed.cancel()
        gate.release()
        await asyncio.gather(first, retry, doomed, return_exceptions=True)
        assert gate.free == 1 and not gate.waiters  # no slot lost to the cancelled waiter
        return order

    assert asyncio.run(scenario()) == ["retry", "first attempt"]
