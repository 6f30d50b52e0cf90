"""Test session setup.

`huggingface_hub` reads HF_ENDPOINT and HF_HUB_DISABLE_XET when it is first imported, so they are set
here, before any test module imports it: every Hub call in the tests goes to a loopback port that the
Hub-server fixture listens on, never to the network.
"""

from __future__ import annotations

import os
import socket
import tempfile

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_PORT = _free_port()
_CACHE = tempfile.mkdtemp(prefix="factory-tests-hf-")
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HOME"] = _CACHE
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# `datasets` pings a public download counter; nothing in the tests may leave the machine.
os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] = "0"
for _secret in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
    os.environ.pop(_secret, None)

pytest_plugins = ["factory.testing.hub_fixture"]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny Llama + tokenizer saved like a Hub checkout; built once per session."""
    from factory.testing.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (model surgery and generation on tiny models: threads only add overhead)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def openai_stub(monkeypatch):
    """Start a loopback LLM stub and point the real OpenAI and Anthropic SDKs at it for this test:
    `server = openai_stub(responder=..., **StubLLMServer options)`. Stopped when the test ends."""
    from factory.testing.llm_stub import StubLLMServer

    servers = []

    def start(responder=None, *, key: str = "sk-stub-test", **options):
        server = StubLLMServer(responder=responder, **options).start()
        servers.append(server)
        for provider, url in (("OPENAI", server.openai_base_url), ("ANTHROPIC", server.anthropic_base_url)):
            monkeypatch.setenv(f"{provider}_BASE_URL", url)
            monkeypatch.setenv(f"{provider}_API_KEY", key)
        return server

    yield start
    for server in reversed(servers):
        server.stop()
