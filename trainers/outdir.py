"""Where a run writes: `--out DIR` is filled only when training has finished.

A run trains in `DIR.partial/` (TRL's `checkpoint-*` folders land there too) and renames it to `DIR` at the
end, so a crash or a bad input never touches what `DIR` held, and `--resume` finds the partial run's last
checkpoint. `DIR` that is not empty is refused unless `--overwrite`; a partial run is refused unless
`--resume` (continue it) or `--overwrite` (start over). `run.json` in the partial directory records what is
being trained, so `--resume` refuses a partial run of another model, dataset or method.

With `--overwrite` the finished run replaces `DIR` through `factory.fsutil.swap_dir`: a kill between its two
renames leaves the old checkpoint aside and a journal, and the next run on `DIR` (or anything reading its
`factory.json`) puts the new checkpoint in place instead of starting over or deleting either one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from factory.errors import BadInput
from factory.fsutil import finish_swap, swap_dir

RUN_JSON = "run.json"


class OutDir:
    def __init__(self, out: str | Path, *, overwrite: bool = False, resume: bool = False):
        self.out = Path(out).expanduser().absolute()
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.overwrite, self.resume = overwrite, resume

    def check(self, identity: str) -> None:
        """Refuse, before anything is loaded or written, what would lose data or cannot resume."""
        if self.overwrite and self.resume:
            raise BadInput("--overwrite and --resume exclude each other")
        finish_swap(self.out)  # an earlier --overwrite killed between its renames: its new checkpoint goes in first
        if self.out.exists() and not self.out.is_dir():
            raise BadInput(f"--out {self.out} is a file, not a directory")
        if self.resume:
            if not self.partial.is_dir():
                finished = " (it holds a finished checkpoint)" if self._nonempty(self.out) else ""
                raise BadInput(f"nothing to resume: no partial run at {self.partial}{finished}")
            started = self._run_identity()
            if started is not None and started != identity:
                raise BadInput(f"the partial run at {self.partial} trains another model, dataset or method "
                               f"(run {started}, now {identity}); pass --overwrite to start over")
            return
        if self._nonempty(self.out) and not self.overwrite:
            raise BadInput(f"--out {self.out} is not empty; pass --overwrite to replace it")
        if self.partial.exists() and not self.overwrite:
            raise BadInput(f"a partial run is at {self.partial}: pass --resume to continue it or --overwrite to "
                           "start over")

    def open(self, identity: str, is_main: bool = True) -> Path:
        """The directory to train in (created, or kept for --resume)."""
        if is_main:
            if not self.resume and self.partial.exists():
                shutil.rmtree(self.partial)
            self.partial.mkdir(parents=True, exist_ok=True)
            (self.partial / RUN_JSON).write_text(json.dumps({"identity": identity, "out": str(self.out)}) + "\n")
        return self.partial

    def commit(self) -> Path:
        """Swap the finished run into `--out`; the old contents go only once the new ones are in place."""
        (self.partial / RUN_JSON).unlink(missing_ok=True)
        if self.out.exists():
            swap_dir(self.partial, self.out)
        else:
            os.rename(self.partial, self.out)
        return self.out

    def _run_identity(self) -> str | None:
        path = self.partial / RUN_JSON
        try:
            return json.loads(path.read_text()).get("identity")
        except (OSError, ValueError):
            return None

    @staticmethod
    def _nonempty(path: Path) -> bool:
        return path.is_dir() and any(path.iterdir())
