"""Durable writes: a reader sees the old file or directory or the whole new one, never half of either.

`atomic_write` replaces a small file. `swap_dir` replaces a whole directory (a dataset version rerun to fill its
failed rows, a `--overwrite` training run), which takes two renames; a kill between them leaves the old content
aside and the new one beside it, with a journal saying so, and `finish_swap` (run by the next writer or reader)
completes that swap instead of losing either side.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from pathlib import Path


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temp file beside `path`, fsync it, rename it over `path`, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """Flush a file that was written and closed elsewhere (a Parquet shard) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (what a dead writer left behind may be swept or finished)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def crash_point(name: str) -> None:
    """Fault injection for crash tests: `FACTORY_CRASH_AT=NAME` kills this process here, as `kill -9` would."""
    if os.environ.get("FACTORY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def journal_of(final: Path) -> Path:
    return final.with_name(f".{final.name}.swap")


def swap_dir(new: Path, final: Path) -> None:
    """Replace directory `final` by the complete directory `new` (beside it), the old content going last.

    The journal `.<final>.swap` is written (durably) before the first rename and names both sides; the old
    directory is renamed to `.<final>.old-<pid>`, `new` into place, then the journal and the old content go.
    """
    journal = journal_of(final)
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    atomic_write(journal, json.dumps({"pid": os.getpid(), "new": new.name, "old": old.name}) + "\n")
    os.rename(final, old)
    crash_point("swap")
    try:
        os.rename(new, final)
    except OSError:
        os.rename(old, final)  # put the old content back before saying why
        journal.unlink(missing_ok=True)
        raise
    fsync_dir(final.parent)
    journal.unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)


def finish_swap(final: Path) -> bool:
    """Complete a `swap_dir` of `final` whose process died between its renames; True if one was finished.

    The new content was complete before the journal was written, so it goes into place; when it is gone too,
    the old content is put back. Either way nothing is deleted that `final` does not hold afterwards. A swap
    whose process still runs is left alone.
    """
    journal = journal_of(final)
    try:
        plan = json.loads(journal.read_text())
        pid, new, old = int(plan["pid"]), final.parent / plan["new"], final.parent / plan["old"]
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        return False  # not a journal we wrote: leave it for a person to look at
    if pid == os.getpid() or pid_alive(pid):
        return False
    try:
        if not final.exists():
            os.rename(new if new.is_dir() else old, final)
    except OSError:  # another process finished it first, or the store is read-only: nothing lost either way
        pass
    if final.exists():
        journal.unlink(missing_ok=True)
        shutil.rmtree(old, ignore_errors=True)
    return final.exists()
