"""The versioned Parquet dataset store (the core: knows no plugin and no CLI)."""

from factory.store.manifest import Cost, InputRef, Manifest, StageInfo, version_id
from factory.store.store import DatasetVersion, Store, check_name

__all__ = ["Cost", "DatasetVersion", "InputRef", "Manifest", "StageInfo", "Store", "check_name", "version_id"]
