"""A loopback, Hub-compatible HTTP server for tests and offline demos.

It speaks the subset of the Hugging Face Hub API that `huggingface_hub` and `datasets` use (repos, commits
with LFS uploads, refs, trees, downloads, collections), stores everything under one directory, and listens
on 127.0.0.1 only. Point the client at it with `HF_ENDPOINT=<server.url>` and `HF_HUB_DISABLE_XET=1`, set
before `huggingface_hub` is imported, or pass `endpoint=server.url` to `HfApi`.

    from factory.hub import HubServer

    with HubServer("/tmp/hub", port=0) as hub:
        print(hub.url)

Command line: `python -m factory.hub --root DIR --port N` prints `READY http://127.0.0.1:PORT`.
"""

from .app import create_app
from .errors import HubError
from .server import DEFAULT_ORGS, DEFAULT_TOKENS, HubServer
from .storage import HubStorage

__all__ = ["DEFAULT_ORGS", "DEFAULT_TOKENS", "HubError", "HubServer", "HubStorage", "create_app"]
