"""The stub LLM server, driven by the real `openai` and `anthropic` SDKs over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request

import aiohttp
import anthropic
import openai
import pytest

from factory.testing.llm_stub import (
    StubConfig,
    StubLLMServer,
    count_tokens,
    default_reply,
    remote_configure,
    remote_reset,
    remote_stats,
    request_key,
    start_stub_process,
    stop_stub_process,
)

MSGS = [{"role": "user", "content": "Name three prime numbers, please."}]


@pytest.fixture
def stub():
    with StubLLMServer() as server:
        yield server


def oai(stub: StubLLMServer, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=stub.openai_base_url, api_key=kw.pop("api_key", "k"), max_retries=0, **kw)


def ant(stub: StubLLMServer, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stub.anthropic_base_url, api_key=kw.pop("api_key", "k"), max_retries=0, **kw)


def ask(client: openai.OpenAI, content: str = "hi there", **kw):
    return client.chat.completions.create(model="gpt-stub", messages=[{"role": "user", "content": content}], **kw)


def test_openai_shape_and_usage(stub):
    messages = [{"role": "system", "content": "You are terse."}, *MSGS]
    r = oai(stub).chat.completions.create(model="gpt-stub", messages=messages, seed=5, temperature=0.7)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == "gpt-stub"
    (choice,) = r.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == default_reply("gpt-stub", messages, seed=5, choice=0)
    assert choice.message.content.endswith(": Name three prime numbers, please.")
    assert r.usage.prompt_tokens == 3 + 5  # whitespace words of every message, system included
    assert r.usage.completion_tokens == count_tokens(choice.message.content) == 8
    assert r.usage.total_tokens == 16


def test_anthropic_shape_and_usage(stub):
    m = ant(stub).messages.create(model="claude-stub", system="You are terse.", messages=MSGS, max_tokens=100)
    assert m.type == "message" and m.role == "assistant" and m.model == "claude-stub" and m.id.startswith("msg_")
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == default_reply("claude-stub", MSGS, system="You are terse.")
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert (m.usage.input_tokens, m.usage.output_tokens) == (3 + 5, count_tokens(m.content[0].text))


def test_deterministic_and_seeded(stub):
    client = oai(stub)
    first = ask(client, seed=1).choices[0].message.content
    assert ask(client, seed=1).choices[0].message.content == first
    assert ask(client, seed=2).choices[0].message.content != first
    r = ask(client, n=3, seed=1)
    texts = [c.message.content for c in r.choices]
    assert len(set(texts)) == 3 and texts[0] == first and [c.index for c in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == sum(count_tokens(t) for t in texts)


def test_max_tokens_stop_and_json(stub):
    client = oai(stub)
    r = ask(client, "one two three four", max_completion_tokens=3)
    assert r.choices[0].message.content.split() == ["stub", "answer", r.choices[0].message.content.split()[2]]
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = ask(client, stop=[":"])
    assert r.choices[0].message.content.startswith("stub answer ") and ":" not in r.choices[0].message.content
    m = ant(stub).messages.create(model="c", messages=MSGS, max_tokens=50, stop_sequences=["three"])
    assert m.content[0].text.endswith("Name ") and m.stop_reason == "stop_sequence" and m.stop_sequence == "three"
    schema = {"type": "object", "properties": {"score": {"type": "integer"}, "why": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "j", "schema": schema}}
    got = json.loads(ask(client, response_format=fmt).choices[0].message.content)
    assert set(got) == {"score", "why"} and isinstance(got["score"], int)
    assert "answer" in json.loads(ask(client, response_format={"type": "json_object"}).choices[0].message.content)


def test_auth_and_missing_model(stub):
    with pytest.raises(openai.AuthenticationError) as exc:
        ask(oai(stub, api_key="bad-key"))
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"
    with pytest.raises(anthropic.AuthenticationError) as aexc:
        ant(stub, api_key="bad-key").messages.create(model="c", messages=MSGS, max_tokens=5)
    assert aexc.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(openai.NotFoundError):
        oai(stub).chat.completions.create(model="missing-model", messages=MSGS)
    with pytest.raises(anthropic.NotFoundError):
        ant(stub).messages.create(model="missing-claude", messages=MSGS, max_tokens=5)
    stub.configure(valid_keys=["good"])
    with pytest.raises(openai.AuthenticationError):
        ask(oai(stub))
    assert ask(oai(stub, api_key="good")).choices
    # Anthropic's own header works too; no key at all does not.
    body = json.dumps({"model": "c", "messages": MSGS, "max_tokens": 5}).encode()
    for headers, status in (({"x-api-key": "good"}, 200), ({}, 401)):
        req = urllib.request.Request(f"{stub.base_url}/v1/messages", data=body, headers=headers, method="POST")
        try:
            code = urllib.request.urlopen(req, timeout=5).status
        except urllib.error.HTTPError as err:
            code = err.code
        assert code == status
    assert stub.stats()["by_status"] == {"401": 4, "404": 2, "200": 2}


def test_models_list(stub):
    assert [m.id for m in oai(stub).models.list()] == ["stub-model"]
    assert [m.id for m in ant(stub).models.list()] == ["stub-model"]


def test_faults_as_the_sdks_see_them():
    with StubLLMServer(script=["429", "500", "malformed", "503"], retry_after="7") as stub:
        client, aclient = oai(stub), ant(stub)
        with pytest.raises(openai.RateLimitError) as exc:
            ask(client)
        assert exc.value.response.headers["retry-after"] == "7" and exc.value.code == "rate_limit_exceeded"
        with pytest.raises(openai.InternalServerError):
            ask(client)
        # A truncated JSON body is not wrapped by either SDK: the decoder's error comes through.
        with pytest.raises(json.JSONDecodeError):
            ask(client)
        with pytest.raises(openai.InternalServerError) as exc:
            ask(client)
        assert exc.value.status_code == 503
        assert ask(client).choices  # the script is spent: attempt 5 succeeds
        with pytest.raises(anthropic.RateLimitError) as aexc:
            aclient.messages.create(model="c", messages=MSGS, max_tokens=5)
        assert aexc.value.response.headers["retry-after"] == "7"
        with pytest.raises(anthropic.InternalServerError):
            aclient.messages.create(model="c", messages=MSGS, max_tokens=5)
        with pytest.raises(json.JSONDecodeError):
            aclient.messages.create(model="c", messages=MSGS, max_tokens=5)
        stats = stub.stats()
        assert stats["by_status"] == {"429": 2, "500": 2, "503": 1, "200": 3}  # malformed bodies come with a 200
        assert stats["faults"] == {"429": 2, "500": 2, "malformed": 2, "503": 1}
        assert stats["repeated"] == 6 and stats["repeated_ok"] == 0


def test_timeout_is_a_client_timeout():
    with StubLLMServer(rate_timeout=1.0, hang_s=30) as stub:
        with pytest.raises(openai.APITimeoutError):
            ask(oai(stub, timeout=0.3))
        with pytest.raises(anthropic.APITimeoutError):
            ant(stub, timeout=0.3).messages.create(model="c", messages=MSGS, max_tokens=5)
    assert stub.stats()["faults"] == {"timeout": 2} and stub.stats()["in_flight"] == 0


def test_first_attempt_429_then_success():
    with StubLLMServer(script=["429"], retry_after="0.01") as stub:
        with pytest.raises(openai.RateLimitError):
            ask(oai(stub), "row 1")
        assert ask(oai(stub), "row 1").choices[0].message.content.endswith("row 1")
        # An SDK that retries honours Retry-After and gets through on its own.
        retrying = openai.OpenAI(base_url=stub.openai_base_url, api_key="k", max_retries=2)
        r = retrying.chat.completions.create(model="gpt-stub", messages=[{"role": "user", "content": "row 2"}])
        assert r.choices[0].message.content.endswith("row 2")
        stats = stub.stats()
        assert stats["by_status"] == {"429": 2, "200": 2} and sorted(stats["by_key"].values()) == [2, 2]


def test_random_faults_are_repeatable():
    def pattern(seed: int) -> list[bool]:
        with StubLLMServer(rate_500=0.5, fault_seed=seed) as stub:
            client, out = oai(stub), []
            for i in range(30):
                try:
                    ask(client, f"row {i}")
                    out.append(True)
                except openai.InternalServerError:
                    out.append(False)
            return out

    first = pattern(1)
    assert first == pattern(1) and first != pattern(2)
    assert 0 < first.count(False) < 30


def test_fault_match_targets_some_requests():
    with StubLLMServer(script=["500"] * 5, fault_match="poison") as stub:
        assert ask(oai(stub), "fine row").choices
        with pytest.raises(openai.InternalServerError):
            ask(oai(stub), "poison row")


def test_counters_in_process_and_over_http(stub):
    client = oai(stub)
    for content in ("a", "b", "a"):
        ask(client, content)
    body = {"model": "gpt-stub", "messages": [{"role": "user", "content": "a"}]}
    stats = stub.stats()
    assert stats["requests"] == 3 and stats["by_status"] == {"200": 3} and stats["by_api"] == {"openai": 3}
    assert stats["by_key"][request_key(body)] == 2 and stats["repeated"] == 1 and stats["repeated_ok"] == 1
    assert stats["prompt_tokens"] == 3 and stats["completion_tokens"] == 3 * 4
    assert remote_stats(stub.base_url) == stats
    remote_reset(stub.base_url)
    assert stub.stats()["requests"] == 0 and stub.stats()["by_key"] == {}
    assert remote_configure(stub.base_url, rate_500=1.0)["rate_500"] == 1.0
    with pytest.raises(openai.InternalServerError):
        ask(client)
    with pytest.raises(urllib.error.HTTPError) as err:
        remote_configure(stub.base_url, rate_501=1.0)
    assert err.value.code == 400
    stub.configure(rate_500=0.0)
    assert ask(client).choices
    with pytest.raises(ValueError, match="rate_5OO"):
        stub.configure(rate_5OO=1.0)
    with pytest.raises(ValueError):
        StubConfig(rate_429=0.7, rate_500=0.7)


def test_custom_responder():
    seen: list[dict] = []

    def responder(req: dict) -> str | list[str]:
        seen.append(req)
        if req["api"] == "openai" and req["n"] > 1:
            return ["Rating: [[7]]", "Rating: [[3]]"]
        return f"Rating: [[{req['choice'] + 5}]]"

    with StubLLMServer(responder=responder) as stub:
        r = ask(oai(stub), "judge this", n=2)
        assert [c.message.content for c in r.choices] == ["Rating: [[7]]", "Rating: [[3]]"]
        assert r.usage.completion_tokens == 4
        m = ant(stub).messages.create(model="c", system="judge", messages=MSGS, max_tokens=9)
        assert m.content[0].text == "Rating: [[5]]"
    assert seen[0]["api"] == "openai" and seen[0]["prompt"] == "judge this" and seen[0]["choice"] == 0
    assert seen[1]["api"] == "anthropic" and seen[1]["system"] == "judge" and seen[1]["body"]["max_tokens"] == 9

    with StubLLMServer(responder=lambda req: 1 / 0) as stub:
        with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
            ask(oai(stub))


def test_latency_does_not_block_concurrent_calls():
    async def burst(url: str) -> list[int]:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer k"}) as session:

            async def one(i: int) -> int:
                body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}]}
                async with session.post(url, json=body) as resp:
                    await resp.read()
                    return resp.status

            return await asyncio.gather(*(one(i) for i in range(16)))

    with StubLLMServer(latency_s=0.3) as stub:
        assert asyncio.run(burst(f"{stub.openai_base_url}/chat/completions")) == [200] * 16
        # A blocking sleep would serve them one at a time.
        assert stub.stats()["max_in_flight"] == 16


def test_subprocess_mode():
    proc, base_url = start_stub_process(latency=0.01, script=["429"], retry_after="0.01", models=["a", "b"])
    try:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="k", max_retries=1)
        assert ask(client, "from a process").choices[0].message.content.endswith("from a process")
        assert [m.id for m in client.models.list()] == ["a", "b"]
        assert remote_stats(base_url)["by_status"] == {"429": 1, "200": 1}
    finally:
        assert stop_stub_process(proc) == 0


def test_throughput_sanity():
    """Prints req/s for small concurrent calls (no assertion on time: the project forbids timing asserts)."""
    total, concurrency = 1000, 64

    async def run(url: str) -> tuple[list[int], float]:
        limit = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector, headers={"Authorization": "Bearer k"}) as session:

            async def one(i: int) -> int:
                body = {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 8}
                async with limit, session.post(url, json=body) as resp:
                    await resp.read()
                    return resp.status

            start = time.perf_counter()
            statuses = await asyncio.gather(*(one(i) for i in range(total)))
            return statuses, time.perf_counter() - start

    with StubLLMServer() as stub:
        statuses, elapsed = asyncio.run(run(f"{stub.openai_base_url}/chat/completions"))
        print(f"\nstub throughput (client in the same process): {total / elapsed:.0f} req/s")
        assert statuses == [200] * total and stub.stats()["requests"] == total
