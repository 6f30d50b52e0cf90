"""The LLM layer's money and data safety against servers that charge honestly but answer badly.

Budget: a stub that reports usage honestly (its tokenizer: whitespace words) is charged through the real
`openai` / `anthropic` SDKs; whatever the prompts look like (one-letter words, which a 4-characters-a-token
guess under-counts fourfold) and however many samples a request asks for, the total it reports is within the
budget. Empty replies (`""`, blanks, `null`, `choices: []`) and 200s with an HTML body come from a small
hostile OpenAI-compatible server started here: they are failures, retried, then failed rows, never cached.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web

from factory.llm import ChatRequest, load_llm
from factory.llm.runner import BudgetExhausted
from factory.testing.llm_stub import StubLLMServer

PRICE = 1000.0  # $ per million tokens, in and out: a few hundred tokens cost cents


def _home(tmp_path, price: float = PRICE):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "config.yaml").write_text(
        f"prices:\n  stub-model: {{input: {price}, output: {price}}}\n"
        f"  claude-stub: {{input: {price}, output: {price}}}\n"
    )
    return home


def _env(monkeypatch, base_openai: str, base_anthropic: str = "") -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", base_openai)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    if base_anthropic:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", base_anthropic)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")


def _short_words(i: int) -> list[ChatRequest]:
    text = " ".join("abcdefghij"[(i + k) % 10] for k in range(120))  # 120 tokens for the stub, 239 characters
    return [ChatRequest(messages=[{"role": "user", "content": f"{i} {text}"}], max_tokens=30)]


@pytest.mark.parametrize("spec,n", [("openai:stub-model", 1), ("openai:stub-model", 5), ("anthropic:claude-stub", 5)])
def test_total_spend_stays_within_the_budget(tmp_path, monkeypatch, spec: str, n: int) -> None:
    budget = 5.0
    with StubLLMServer(models=("stub-model", "claude-stub")) as stub:
        _env(monkeypatch, stub.openai_base_url, stub.anthropic_base_url)
        llm = load_llm(spec, home=_home(tmp_path), budget_usd=budget, concurrency=4, progress=False)
        requests = [
            ChatRequest(messages=r.messages, max_tokens=r.max_tokens, n=n, temperature=0.7)
            for i in range(200)
            for r in _short_words(i)
        ]
        with pytest.raises(BudgetExhausted):
            llm.generate_sync(requests)
        s = stub.stats()
    charged = (s["prompt_tokens"] + s["completion_tokens"]) * PRICE / 1e6
    assert 0 < charged <= budget, f"the server charged ${charged:.4f} of a ${budget} budget"
    assert llm.stats.usd == pytest.approx(charged)
    assert llm.stats.answered > 0


# -- a hostile OpenAI-compatible server ------------------------------------------------------------------
def _completion(content, choices=True) -> dict:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "stub-model",
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    body["choices"] = (
        [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]
        if choices
        else []
    )
    return body


class Hostile:
    """Answers each distinct prompt with `bad` for its first `bad_times` calls, then with a real answer."""

    def __init__(self, bad: str, bad_times: int) -> None:
        self.bad, self.bad_times = bad, bad_times
        self.calls: dict[str, int] = {}
        self.retry_after: str | None = None
        self.echo: int | None = None  # answer this status with the Authorization header in the message

    async def handle(self, request: web.Request) -> web.Response:
        if self.echo is not None:
            message = f"bad request from {request.headers.get('Authorization', '')}"
            return web.json_response({"error": {"message": message, "type": "invalid"}}, status=self.echo)
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        seen = self.calls[prompt] = self.calls.get(prompt, 0) + 1
        if self.retry_after is not None and seen == 1:
            return web.json_response(
                {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": self.retry_after}
            )
        if seen <= self.bad_times:
            if self.bad == "html":
                return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
            if self.bad == "no-choices":
                return web.json_response(_completion(None, choices=False))
            return web.json_response(_completion({"empty": "", "blank": " \n\t ", "null": None}[self.bad]))
        return web.json_response(_completion(f"answer to {prompt}"))


@pytest.fixture
def hostile() -> Iterator:
    started: list = []

    def run(bad: str, bad_times: int):
        server = Hostile(bad, bad_times)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", server.handle)
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        started.append((loop, runner, thread))
        return server, f"http://127.0.0.1:{port}/v1"

    yield run
    for loop, runner, thread in started:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _ask(tmp_path, n: int = 3, **settings):
    llm = load_llm("openai:stub-model", home=_home(tmp_path), progress=False, backoff_base_s=0.01, **settings)
    requests = [ChatRequest(messages=[{"role": "user", "content": f"q{i}"}], max_tokens=5) for i in range(n)]
    return llm, llm.generate_sync(requests)


@pytest.mark.parametrize("bad", ["empty", "blank", "null", "no-choices", "html"])
def test_bad_replies_are_retried_then_answered(tmp_path, monkeypatch, hostile, bad: str) -> None:
    server, url = hostile(bad, 1)
    _env(monkeypatch, url)
    llm, out = _ask(tmp_path)
    assert [c.error for c in out] == [None] * 3
    assert [c.text for c in out] == ["answer to q0", "answer to q1", "answer to q2"]
    assert all(count == 2 for count in server.calls.values())


@pytest.mark.parametrize("bad", ["empty", "blank", "null", "no-choices", "html"])
def test_bad_replies_that_persist_are_failed_rows_never_cached(tmp_path, monkeypatch, hostile, bad: str) -> None:
    server, url = hostile(bad, 10**6)
    _env(monkeypatch, url)
    llm, out = _ask(tmp_path, max_retries=2, schema_retries=1)
    assert all(c.error for c in out) and llm.stats.failed == 3 and llm.stats.answered == 0
    calls = dict(server.calls)
    server.bad_times = 0  # the server recovers: a rerun asks again, since nothing bad was cached
    again, out = _ask(tmp_path)
    assert [c.error for c in out] == [None] * 3 and again.stats.cached == 0
    assert all(server.calls[p] == calls[p] + 1 for p in calls)


def test_retry_after_is_capped(tmp_path, monkeypatch, hostile) -> None:
    server, url = hostile("empty", 0)
    server.retry_after = "86400"  # a day
    _env(monkeypatch, url)
    llm, out = _ask(tmp_path, n=1, backoff_max_s=0.2)
    assert out[0].text == "answer to q0" and llm.stats.retries == 1


# -- a server that echoes the key ------------------------------------------------------------------------
KEY = "sk-live-0123456789abcdef"


@pytest.mark.parametrize("status", [400, 401])
def test_an_echoed_key_never_reaches_rows_or_errors(tmp_path, monkeypatch, hostile, status: int) -> None:
    from factory.errors import FactoryError
    from publish.guard import secret_values

    server, url = hostile("empty", 0)
    server.echo = status
    home = _home(tmp_path)
    (home / "config.yaml").write_text(
        (home / "config.yaml").read_text() + "providers:\n  openai:\n    api_key_env: MY_LLM_CRED\n"
    )
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("MY_LLM_CRED", KEY)
    llm = load_llm("openai:stub-model", home=home, progress=False, max_retries=0)
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    try:
        out = llm.generate_sync([request])
    except FactoryError as exc:
        assert status == 401 and KEY not in str(exc) and "***" in str(exc)
    else:
        assert status == 400 and out[0].error and KEY not in out[0].error and "***" in out[0].error
    # the publish guard knows the configured variable, though its name does not look secret
    assert secret_values(home)[KEY] == "$MY_LLM_CRED"


@pytest.mark.parametrize("status", [400, 401])
def test_an_echoed_key_stays_out_of_cli_output_and_dataset(tmp_path, monkeypatch, hostile, status: int) -> None:
    from click.testing import CliRunner

    from factory.cli.main import cli
    from factory.store import Store

    server, url = hostile("empty", 0)
    server.echo = status
    home = _home(tmp_path)
    (home / "factory-store.json").write_text("{}")
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    (tmp_path / "p.jsonl").write_text('{"instruction": "q1"}\n{"instruction": "q2"}\n')
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "datasets", "import", str(tmp_path / "p.jsonl"), "--name", "p"]
                         ).exit_code == 0
    result = runner.invoke(cli, ["--home", str(home), "generate", "p", "--llm", "openai:stub-model", "--max-retries",
                                 "0", "--allow-empty"])
    assert KEY not in result.output and "Traceback" not in result.output
    if status == 401:
        assert result.exit_code == 1 and "***" in result.output
        return
    assert result.exit_code == 0, result.output
    version = Store(home).resolve("p-answers")
    errors = version.read()["error"].to_list()
    assert all(e and "***" in e and KEY not in e for e in errors)
    assert all(KEY not in f.read_text(errors="replace") for f in version.path.rglob("*.json"))


@pytest.mark.parametrize("url", ["not a url", "ftp://x/v1", "http://", "http//127.0.0.1:1", "http://h:port/v1"])
def test_a_malformed_base_url_is_a_one_line_error(tmp_path, monkeypatch, url: str) -> None:
    from click.testing import CliRunner

    from factory.cli.main import cli

    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    (tmp_path / "seed.jsonl").write_text('{"instruction": "a topic"}\n')
    home = tmp_path / "store"
    runner = CliRunner()
    assert (
        runner.invoke(
            cli, ["--home", str(home), "datasets", "import", str(tmp_path / "seed.jsonl"), "--name", "seed"]
        ).exit_code
        == 0
    )
    result = runner.invoke(
        cli,
        [
            "--home",
            str(home),
            "-q",
            "build",
            "evol-instruct",
            "--from",
            "seed",
            "--llm",
            "openai:stub-model",
            "--n",
            "1",
        ],
    )
    assert result.exit_code == 2 and "invalid base URL" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_unknown_provider_option_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    from factory.errors import BadInput

    home = _home(tmp_path)
    (home / "config.yaml").write_text("providers:\n  openai:\n    base_urll: http://127.0.0.1:1/v1\n")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with pytest.raises(BadInput, match="unknown option 'base_urll' for the openai provider"):
        load_llm("openai:stub-model", home=home)
