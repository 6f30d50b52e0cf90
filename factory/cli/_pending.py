"""Verbs whose machinery is not in this release yet: they exist, explain themselves, and exit 1."""

from __future__ import annotations

import click


def pending_command(name: str, summary: str, usage: str) -> click.Command:
    @click.command(name=name, help=f"{summary}\n\n\b\nUsage, once available:\n  {usage}",
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.pass_context
    def command(ctx: click.Context) -> None:
        from factory.errors import FactoryError

        raise FactoryError(f"`factory {name}` is not available in this release yet")

    return command
