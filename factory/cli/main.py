"""The `factory` command line: a click group whose verbs live one module each, imported only when used.

Errors a user can act on (`FactoryError`) print one line on stderr and exit 1 (2 for bad input);
anything unexpected prints one line too, and `-v` shows the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from factory import __version__

DEFAULT_HOME = ".factory"

# verb -> "module:attribute"; each module is small and imports its heavy dependencies inside the command.
COMMANDS = {
    "build": "factory.cli.build:build",
    "generate": "factory.cli.generate:generate",
    "hub": "factory.cli.hub:hub",
    "judge": "factory.cli.judge:judge",
    "train": "factory.cli.train:train",
    "publish": "factory.cli.publish:publish",
    "zoo": "factory.cli.zoo:zoo",
    "datasets": "factory.cli.datasets:datasets",
    "dedup": "factory.cli.dedup:dedup",
    "filter": "factory.cli.filter:filter_",
    "schemes": "factory.cli.plugins:schemes",
    "judges": "factory.cli.plugins:judges",
    "run": "factory.cli.run:run",
    "eval": "factory.cli.eval:eval_",
    "lineage": "factory.cli.lineage:lineage",
    "quickstart": "factory.cli.quickstart:quickstart",
    "prune": "factory.cli.prune:prune",
    "merge": "factory.cli.merge:merge",
    "view": "factory.cli.view:view",
}


@dataclass
class App:
    """What every command gets through `click.pass_obj`: the home, and the store opened on demand."""

    home: Path
    verbosity: int = 0
    _store: Any = field(default=None, repr=False)

    @property
    def store(self):
        if self._store is None:
            from factory.store import Store

            self._store = Store(self.home)
        return self._store


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, so `factory --help` stays instant."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        from factory.errors import FactoryError

        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, BrokenPipeError):
            raise  # click ends a closed pipe (`factory datasets show X | head`) quietly
        except FactoryError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted; what was already stored is kept", 130)
        except Exception as exc:  # a bug or an environment problem: one line, traceback with -v
            _fail(ctx, f"unexpected {type(exc).__name__}: {exc}", 1)


def _fail(ctx: click.Context, message: str, code: int) -> None:
    from factory.secrets import scrub

    app = ctx.find_object(App)
    if app is not None and app.verbosity > 0:
        import traceback

        traceback.print_exc()
    first = scrub(message.strip().splitlines()[0] if message.strip() else "failed")
    click.echo(f"error: {first}", err=True)
    ctx.exit(code)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar="FACTORY_HOME",
              default=DEFAULT_HOME, show_default=True, show_envvar=True,
              help="The factory home: where datasets, caches and runs are stored.")
@click.option("-v", "--verbose", count=True, help="More logging; -v also shows tracebacks on errors.")
@click.option("-q", "--quiet", count=True, help="Less output.")
@click.version_option(__version__, prog_name="factory")
@click.pass_context
def cli(ctx: click.Context, home: Path, verbose: int, quiet: int) -> None:
    """factory: build instruction datasets with LLMs, judge them, train small models, publish to the Hub.

    \b
    The flow:
      factory datasets import seeds.jsonl --name seeds    bring seed data in
      factory build evol-instruct --from seeds --llm gpt4  generate instruction data
      factory judge evol-instruct --with gpt4              keep what a judge scores well
      factory train sft --model BASE --data evol-instruct --out ckpt
      factory publish ckpt --repo you/model                datasets, weights and cards to the Hub

    Every dataset version is immutable and content-addressed; `factory lineage REF` shows how it was made.
    """
    verbosity = verbose - quiet
    level = logging.DEBUG if verbosity > 1 else logging.INFO if verbosity == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbosity < 0:
        os.environ.setdefault("TQDM_DISABLE", "1")
    ctx.obj = App(home=home, verbosity=verbosity)


def main() -> None:
    cli.main(prog_name="factory")


if __name__ == "__main__":
    sys.exit(main())
