"""`factory hub serve`: the loopback Hub-compatible server, for air-gapped teams, demos and tests.

`huggingface_hub`, `datasets` and `transformers` talk to it when `HF_ENDPOINT` points at it.
"""

from __future__ import annotations

from pathlib import Path

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.group()
def hub() -> None:
    """Run a Hub-compatible server on this machine (repos, LFS, tags, collections)."""


@hub.command()
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8890, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; keep loopback unless you mean it.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Where repos are stored (default: hub/ inside the factory home).")
@click.option("--token", "tokens", multiple=True, metavar="USER=TOKEN",
              help="A user and their token (repeatable). Each user owns the namespace of their name; a single "
                   "user may write to any namespace. Without --token: user `local` with a fresh random token.")
@pass_app
def serve(app: App, port: int, host: str, root: Path | None, tokens: tuple[str, ...]) -> None:
    """Serve the Hub API until Ctrl-C.

    \b
    Then, in another shell:
      export HF_ENDPOINT=http://127.0.0.1:8890 HF_TOKEN=<the token> HF_HUB_DISABLE_XET=1
      factory publish evol-instruct --repo local/evol-instruct
      python -c "import datasets; print(datasets.load_dataset('local/evol-instruct'))"
    """
    import secrets
    import threading

    from factory.errors import BadInput
    from factory.hub import HubServer

    users: dict[str, str] = {}
    for pair in tokens:
        user, sep, token = pair.partition("=")
        if not sep or not user.strip() or not token.strip():
            raise BadInput(f"--token expects USER=TOKEN, got {user.strip() or '?'}=...")
        users[token.strip()] = user.strip()
    fresh = None
    if not users:
        fresh = "hf_local_" + secrets.token_hex(16)
        users[fresh] = "local"
    if root is None:
        app.store.ensure()  # the default root lives inside the factory home: make that a store first
        root = app.home / "hub"
    root.mkdir(parents=True, exist_ok=True)
    try:
        server = HubServer(root, port=port, tokens=users, orgs={}, host=host).start()
    except (OSError, RuntimeError) as exc:
        cause = exc.__cause__ or exc
        raise BadInput(f"cannot listen on {host}:{port}: {getattr(cause, 'strerror', None) or cause}") from None
    if not _is_loopback(host):
        click.echo(
            f"warning: listening on {host}: traffic (tokens included) is plain HTTP, readable by anyone on the "
            "network. This server is not meant to face the internet; see docs/security.md.",
            err=True,
        )
    click.echo(f"Hub serving {root} at {server.url}  (users: {', '.join(sorted(set(users.values())))})")
    if fresh:
        click.echo(f"token for user local (shown once): {fresh}")
    # The line to paste into another shell must carry a token, or `factory publish` there finds none;
    # tokens the user chose are theirs to paste (we never echo them).
    token = fresh or "<your token>"
    click.echo(f"export HF_ENDPOINT={server.url} HF_TOKEN={token} HF_HUB_DISABLE_XET=1   # Ctrl-C to stop")
    stop = threading.Event()
    try:
        stop.wait()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.stop()


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
