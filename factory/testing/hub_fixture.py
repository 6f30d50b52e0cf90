"""The `hub_server` pytest fixture: one loopback Hub per test session, on the port `HF_ENDPOINT` names.

`tests/conftest.py` sets `HF_ENDPOINT=http://127.0.0.1:<HUB_PORT>` before `huggingface_hub` is imported;
this fixture listens on exactly that port, so code that uses the default endpoint talks to it. Use it from
a conftest with `pytest_plugins = ["factory.testing.hub_fixture"]`, or import it into a test module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from factory.hub.server import DEFAULT_TOKENS, HubServer

TOKENS = {**DEFAULT_TOKENS, "hf_other_token": "otheruser"}


def endpoint_port() -> int:
    """The port of `HF_ENDPOINT`, which must point at 127.0.0.1 (never at the real Hub)."""
    endpoint = os.environ.get("HF_ENDPOINT", "")
    parsed = urlparse(endpoint)
    if parsed.hostname != "127.0.0.1" or parsed.port is None:
        raise RuntimeError(f"HF_ENDPOINT must be http://127.0.0.1:PORT for the loopback Hub, got {endpoint!r}")
    return parsed.port


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """A running loopback Hub: `hf_test_token` is `testuser` (member of `testorg`), `hf_other_token` is `otheruser`."""
    with HubServer(tmp_path_factory.mktemp("hub"), port=endpoint_port(), tokens=TOKENS) as server:
        yield server
