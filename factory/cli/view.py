"""`factory view`: serve the local web viewer over the store (Starlette + uvicorn, imported when it starts)."""

from __future__ import annotations

from pathlib import Path

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command()
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8321, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but the loopback needs --token.")
@click.option("--token", metavar="TOKEN",
              help="Require this token (Bearer header, or open /?token=TOKEN once); 'auto' makes one and prints it.")
@click.option("--open", "open_browser", is_flag=True, help="Open the viewer in a browser.")
@click.option("--review", is_flag=True, help="Allow human review: marking rows and saving a new version.")
@click.option("--reviewer", metavar="NAME", help="Name recorded in reviewed versions (default: the login name).")
@click.option("--checkpoints", "checkpoint_dirs", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A checkpoint directory, or a folder holding some (repeatable); $FACTORY_HOME/checkpoints is "
                   "always looked in.")
@pass_app
def view(app: App, port: int, host: str, token: str | None, open_browser: bool, review: bool,
         reviewer: str | None, checkpoint_dirs: tuple[Path, ...]) -> None:
    """Browse the store in a web browser: datasets, versions, rows as chats, diffs, lineage, charts, runs in
    progress and checkpoints; with --review, drop or edit rows and save them as a new version.

    \b
    Examples:
      factory view --open
      factory view --review --reviewer alice
      factory view --host 0.0.0.0 --token auto      # reachable from other machines, token required
    """
    import socket

    from factory.view.app import Settings, create_app
    from factory.view.security import bind_token, is_loopback

    required = bind_token(host, token)
    if required:
        from factory.secrets import register_secret

        register_secret(required)  # masked wherever it might show up (a row quoting it, an error)
    settings = Settings(review=review, checkpoint_roots=list(checkpoint_dirs))
    if reviewer:
        settings.reviewer = reviewer
    asgi = create_app(app.store, settings, token=required, loopback_only=is_loopback(host) and not required)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        from factory.errors import BadInput

        raise BadInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    click.echo(f"factory view: {url}  ({'review on' if review else 'read-only'}; Ctrl-C stops)", err=True)
    if required and token == "auto":
        click.echo(f"open once to log in: {url}?token={required}", err=True)  # printed once, never stored
    if open_browser:
        import webbrowser

        webbrowser.open(url + (f"?token={required}" if required else ""))
    _serve(asgi, sock)


def _serve(asgi, sock) -> None:
    import uvicorn

    config = uvicorn.Config(asgi, log_level="warning", access_log=False, lifespan="off", server_header=False)
    server = uvicorn.Server(config)
    sock.listen(128)
    server.run(sockets=[sock])
