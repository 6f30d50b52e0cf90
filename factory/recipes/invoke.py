"""Run one `factory` command in this process, as a recipe stage: its stdout's last line is what it made.

Every command prints its artefact (a dataset ref, a checkpoint directory, a results file, a URL) as the last
line on stdout and its talk on stderr, so a stage needs no other interface to the command. stderr still reaches
the terminal (progress bars, summaries); its last lines are kept for the run's record of a failure.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections import deque
from dataclasses import dataclass
from typing import Any

import click


class _Tee(io.TextIOBase):
    """Write through to a stream and keep the last lines (for the error of a failed stage)."""

    def __init__(self, stream: Any, keep: int = 20):
        self.stream = stream
        self.lines: deque[str] = deque(maxlen=keep)
        self._partial = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        chunks = (self._partial + text).replace("\r", "\n").split("\n")
        self._partial = chunks.pop()
        self.lines.extend(c for c in chunks if c.strip())
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


@dataclass
class Invocation:
    code: int
    stdout: str
    stderr_tail: list[str]

    @property
    def artefact(self) -> str | None:
        lines = [line.strip() for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else None

    @property
    def error(self) -> str:
        for line in reversed(self.stderr_tail):
            if line.startswith("error:"):
                return line.removeprefix("error:").strip()
        return self.stderr_tail[-1] if self.stderr_tail else f"exit code {self.code}"


def invoke(root: click.Group, argv: list[str]) -> Invocation:
    """`factory ARGV...` in-process; never raises for the command's own failures."""
    out = io.StringIO()
    err = _Tee(sys.stderr)
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result = root.main(args=argv, prog_name="factory", standalone_mode=False)
            code = result if isinstance(result, int) else 0
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            code = exc.exit_code
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            code = 1
    return Invocation(code, out.getvalue(), list(err.lines))
