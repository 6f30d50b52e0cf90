"""`python -m factory.hub --root DIR --port N`: serve a loopback Hub until interrupted.

Prints `READY http://127.0.0.1:PORT` (flushed) once the port is bound, so a parent process can wait for it.
`--token TOKEN=USER` and `--org USER=ORG` (repeatable) replace the default `hf_test_token` / `testuser` /
`testorg` identities.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import DEFAULT_ORGS, DEFAULT_TOKENS, HubServer


def _pairs(values: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        left, sep, right = value.partition("=")
        if not sep or not left or not right:
            raise SystemExit(f"{flag} expects KEY=VALUE, got {value!r}")
        out.append((left, right))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m factory.hub", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory holding the Hub's repos, blobs and collections")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN=USER")
    parser.add_argument("--org", action="append", default=[], metavar="USER=ORG")
    args = parser.parse_args(argv)

    tokens = dict(_pairs(args.token, "--token")) or DEFAULT_TOKENS
    orgs: dict[str, list[str]] = {}
    for user, org in _pairs(args.org, "--org"):
        orgs.setdefault(user, []).append(org)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    server = HubServer(args.root, port=args.port, tokens=tokens, orgs=orgs or DEFAULT_ORGS).start()
    print(f"READY {server.url}", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
