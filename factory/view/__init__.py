"""`factory view`: a local web viewer over the store (datasets, rows, diffs, lineage, charts, runs, checkpoints)
with human review that writes a new version. Starlette and Jinja are imported only when the viewer starts."""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    from factory.view.app import create_app as _create

    return _create(*args, **kwargs)
