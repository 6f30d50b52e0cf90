"""Errors a user can act on.

`FactoryError` carries a one-line message that the CLI prints without a traceback (exit 1).
`BadInput` is a usage error: the command line or config is wrong (exit 2).
"""

from __future__ import annotations


class FactoryError(Exception):
    """A runtime error with a message fit for the user's eyes."""

    exit_code = 1


class BadInput(FactoryError):
    """The user's input (arguments, config, data) is wrong; retrying won't help."""

    exit_code = 2
