"""The versioned dataset store.

Layout under the factory home:

    factory-store.json                     marks the directory as a store
    datasets/<name>/<version>/data/*.parquet
    datasets/<name>/<version>/manifest.json
    datasets/<name>/latest                 the newest version id of <name>

Versions are immutable. They are written to a hidden temp directory and renamed into place, manifest
last, so a reader never sees half a version and a crash leaves every earlier version intact. What killed
writers leave behind is dealt with by the next write (`Store.sweep`): a replacing commit cut between its two
renames is finished (the new version goes into place; the old one back if the new one is gone), temp
directories of dead processes are removed, and so are versions half deleted by `datasets rm`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factory.errors import BadInput, FactoryError
from factory.fsutil import atomic_write, finish_swap, pid_alive
from factory.store.manifest import MANIFEST, Manifest

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import polars as pl

    from factory.store.writer import VersionWriter

MARKER = "factory-store.json"
STORE_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HEX = re.compile(r"^[0-9a-f]+$")


def check_name(name: str) -> str:
    """Dataset names are single path components: letters, digits, '.', '_', '-'; no '/' or '..'."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise BadInput(f"invalid dataset name {name!r}: use letters, digits, '.', '_' and '-' (no '/' or '..')")
    return name


@dataclass(frozen=True)
class DatasetVersion:
    """One stored, immutable version of a dataset."""

    path: Path
    manifest: Manifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def ref(self) -> str:
        return self.manifest.ref()

    def files(self) -> list[Path]:
        return sorted((self.path / "data").glob("*.parquet"))

    def checked_files(self) -> list[Path]:
        """The shards, after checking the manifest's files are all there: a version never reads as empty."""
        files = self.files()
        listed = [self.path / f.path for f in self.manifest.files]
        missing = [p for p in listed if not p.is_file()]
        if missing or (self.manifest.rows and not files):
            found = sum(f.rows for f in self.manifest.files if (self.path / f.path).is_file()) if listed else 0
            where = f" (missing: {', '.join(p.name for p in missing[:3])})" if missing else ""
            raise FactoryError(f"{self.ref} is damaged: the manifest says {self.manifest.rows} rows, found "
                               f"{found if missing else 0}{where}")
        return files

    def scan(self) -> pl.LazyFrame:
        import polars as pl

        files = self.checked_files()
        if not files:
            return pl.LazyFrame(schema={c: pl.String for c in self.manifest.columns})
        return pl.scan_parquet(files)

    def read(self) -> pl.DataFrame:
        import polars as pl

        try:
            df = self.scan().collect()
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise FactoryError(f"{self.ref} is damaged: cannot read its shards ({str(exc).splitlines()[0]})") from None
        if df.height != self.manifest.rows:
            raise FactoryError(
                f"{self.ref} is damaged: the manifest says {self.manifest.rows} rows, found {df.height}"
            )
        return df

    def to_hf(self) -> Any:
        """The version as a `datasets.Dataset` (the Parquet shards loaded as they are)."""
        from datasets import load_dataset

        return load_dataset("parquet", data_files=[str(f) for f in self.files()], split="train")


class Store:
    """A factory home's datasets. Cheap to construct; nothing is created until something is written."""

    def __init__(self, home: str | Path):
        self.home = Path(home).expanduser().absolute()
        self.datasets_dir = self.home / "datasets"
        if self.home.exists():
            self._check_is_store()

    def _check_is_store(self) -> None:
        if not self.home.is_dir():
            raise BadInput(f"factory home {self.home} is not a directory")
        if not (self.home / MARKER).is_file() and any(self.home.iterdir()):
            raise BadInput(f"{self.home} is not a factory store (no {MARKER}); choose another --home")

    def ensure(self) -> None:
        """Create the store on first write."""
        try:
            self.datasets_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a --home under /proc, on a read-only disk, below a file
            raise BadInput(f"cannot create the factory home {self.home}: {exc.strerror or exc}") from None
        marker = self.home / MARKER
        if not marker.exists():
            atomic_write(marker, json.dumps({"format": STORE_FORMAT}) + "\n")

    # -- reading -----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        if not self.datasets_dir.is_dir():
            return []
        return sorted(p.name for p in self.datasets_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def versions(self, name: str) -> list[DatasetVersion]:
        """All complete versions of `name`, oldest first."""
        d = self.datasets_dir / check_name(name)
        if not d.is_dir():
            return []
        self._recover(d)
        found = [self._load_or_warn(p) for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted((v for v in found if v), key=lambda v: (v.manifest.created, v.version))

    @classmethod
    def _load_or_warn(cls, path: Path) -> DatasetVersion | None:
        """A version for listings: one corrupt manifest is skipped with a warning naming it, not an error."""
        try:
            return cls._load(path)
        except FactoryError as exc:
            log.warning("warning: skipping %s: %s", path, exc)
            return None

    def all_versions(self) -> Iterator[DatasetVersion]:
        for name in self.names():
            yield from self.versions(name)

    def latest(self, name: str) -> DatasetVersion | None:
        pointer = self.datasets_dir / check_name(name) / "latest"
        self._recover(pointer.parent)
        if pointer.is_file():
            v = self._load_or_warn(self.datasets_dir / name / pointer.read_text().strip())
            if v:
                return v
        versions = self.versions(name)
        return versions[-1] if versions else None

    def get(self, name: str, version: str) -> DatasetVersion | None:
        path = self.datasets_dir / check_name(name) / version
        if not path.is_dir():
            finish_swap(path)  # a replacing commit killed between its renames: finish it before answering
        return self._load(path)

    def resolve(self, ref: str) -> DatasetVersion:
        """`NAME` (latest), `NAME@VERSION` (a unique prefix is enough) or a path to a version directory."""
        if "@" not in ref and (os.sep in ref or "/" in ref or ref.startswith(".")):
            v = self._load(Path(ref))
            if v is None:
                raise BadInput(f"{ref} is not a dataset version directory (no {MANIFEST})")
            return v
        name, _, prefix = ref.partition("@")
        check_name(name)
        if not prefix:
            v = self.latest(name)
            if v is None:
                raise BadInput(f"unknown dataset {name!r}{self._known_hint()}")
            return v
        if not _HEX.match(prefix):
            raise BadInput(f"invalid version {prefix!r} in {ref!r}: versions are hex ids")
        matches = [v for v in self.versions(name) if v.version.startswith(prefix)]
        if not matches:
            raise BadInput(f"no version {prefix!r} of dataset {name!r}{self._known_hint(name)}")
        if len(matches) > 1:
            raise BadInput(f"{ref!r} is ambiguous: {', '.join(v.version for v in matches)}")
        return matches[0]

    def _known_hint(self, name: str | None = None) -> str:
        if name:
            versions = [v.version for v in self.versions(name)]
            return f" (versions: {', '.join(versions)})" if versions else " (it has no versions)"
        names = self.names()
        return f" (known: {', '.join(names)})" if names else f" (the store at {self.home} is empty)"

    @staticmethod
    def _load(path: Path) -> DatasetVersion | None:
        manifest = path / MANIFEST
        if not manifest.is_file():
            return None
        try:
            return DatasetVersion(path.absolute(), Manifest.read(manifest))
        except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
            raise FactoryError(f"corrupt manifest {manifest}: {str(exc).splitlines()[0][:200]}") from None

    def dependents(self, version: DatasetVersion) -> list[DatasetVersion]:
        """Versions that list `version` among their inputs."""
        return [v for v in self.all_versions()
                if any(i.name == version.name and i.version == version.version for i in v.manifest.inputs)]

    # -- writing -----------------------------------------------------------------------------------
    def writer(self, name: str, **kwargs: Any) -> VersionWriter:
        from factory.store.writer import VersionWriter

        return VersionWriter(self, check_name(name), **kwargs)

    def set_latest(self, name: str, version: str) -> None:
        self.sweep()
        atomic_write(self.datasets_dir / name / "latest", version + "\n")

    @staticmethod
    def _recover(directory: Path) -> None:
        """Finish the replacing commits in a dataset's directory whose writer died between its two renames."""
        if directory.is_dir():
            for journal in directory.glob(".*.swap"):
                finish_swap(directory / journal.name[1:-len(".swap")])

    def sweep(self) -> None:
        """What killed writers left, on every write: finish their swaps, remove their temp directories.

        `.tmp-<version>-<pid>` of a process that no longer runs is removed (a writer that is still running keeps
        its own); so are `.trash-*` (a version `rm` had taken out) and `.<version>.old-<pid>` left after a swap
        had finished.
        """
        if not self.datasets_dir.is_dir():
            return
        for d in self.datasets_dir.iterdir():
            if not d.is_dir() or d.name.startswith("."):
                continue
            self._recover(d)
            for tmp in d.glob(".tmp-*"):
                pid = tmp.name.rsplit("-", 1)[-1]
                if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                    shutil.rmtree(tmp, ignore_errors=True)
            for trash in d.glob(".trash-*"):
                shutil.rmtree(trash, ignore_errors=True)
            for old in d.glob(".*.old-*"):
                if not (d / f".{old.name[1:].split('.old-')[0]}.swap").exists():
                    shutil.rmtree(old, ignore_errors=True)

    def check_owned(self, version: DatasetVersion) -> None:
        """Refuse a version that lies outside this store (a path given to `datasets rm`, a symlink out)."""
        if not version.path.resolve().is_relative_to(self.datasets_dir.resolve()):
            raise BadInput(f"{version.path} is not in this store ({self.home}); refusing to delete it")

    def remove(self, version: DatasetVersion, force: bool = False) -> list[DatasetVersion]:
        """Delete one version; refuses while another version depends on it, unless `force`."""
        self.check_owned(version)
        users = self.dependents(version)
        if users and not force:
            names = ", ".join(u.ref for u in users)
            raise FactoryError(f"{version.ref} is an input of {names}; remove those first or pass --force")
        trash = version.path.with_name(f".trash-{version.version}-{os.getpid()}")
        os.rename(version.path, trash)  # atomic: the version vanishes whole
        shutil.rmtree(trash, ignore_errors=True)
        self.sweep()
        remaining = self.versions(version.name)
        pointer = self.datasets_dir / version.name / "latest"
        if remaining:
            if pointer.is_file() and pointer.read_text().strip() == version.version:
                self.set_latest(version.name, remaining[-1].version)
        else:
            shutil.rmtree(self.datasets_dir / version.name, ignore_errors=True)
        return users

