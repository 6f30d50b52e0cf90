"""Git and Hub conventions the loopback Hub must reproduce: LFS rules, git object ids, card metadata.

Pure functions with no I/O, so the storage layer and the HTTP handlers agree on what a file's `oid`
is, whether a path goes to LFS, and what a README's YAML front matter says.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from typing import Any

import yaml

LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub sends files of 10 MB and more to LFS whatever their name

_COMMON_LFS = """*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gguf *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack
*.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar
*.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"""
_DATASET_EXTRA_LFS = """*.lz4 *.mds *.pcm *.sam *.raw *.aac *.flac *.mp3 *.ogg *.wav *.bmp *.gif *.png *.tiff *.jpg
*.jpeg *.webp *.mp4 *.webm"""


def default_gitattributes(repo_type: str) -> str:
    """The `.gitattributes` the Hub puts in a new repo's initial commit."""
    patterns = _COMMON_LFS.split()
    if repo_type == "dataset":
        patterns += _DATASET_EXTRA_LFS.split()
    return "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in patterns)


def lfs_patterns(gitattributes: str) -> list[str]:
    """Patterns a `.gitattributes` text routes through LFS (`filter=lfs`, not negated with `-filter`)."""
    out = []
    for line in gitattributes.splitlines():
        parts = line.strip().split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            out.append(parts[0])
    return out


def _git_match(pattern: str, path: str) -> bool:
    """gitattributes/gitignore-style match: a pattern without '/' matches the basename anywhere."""
    pattern = pattern.lstrip("/") if pattern.startswith("/") else pattern
    if "/" not in pattern.rstrip("/"):
        name = path.rsplit("/", 1)[-1]
        return fnmatch.fnmatchcase(name, pattern.rstrip("/"))
    if "**" in pattern:
        prefix = pattern.split("**", 1)[0]
        return path.startswith(prefix) and fnmatch.fnmatchcase(path, pattern.replace("**/", "*"))
    return fnmatch.fnmatchcase(path, pattern)


def is_lfs(path: str, size: int, patterns: list[str]) -> bool:
    """Whether the Hub asks for `path` to be uploaded through LFS."""
    if size == 0:
        return False
    return size >= LFS_THRESHOLD or any(_git_match(p, path) for p in patterns)


def is_ignored(path: str, gitignore: str | None) -> bool:
    """A small `.gitignore` matcher: plain, `dir/` and negated (`!`) patterns, last match wins."""
    if not gitignore:
        return False
    ignored = False
    parts = path.split("/")
    for raw in gitignore.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        if pattern.endswith("/"):
            dirs = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
            hit = any(_git_match(pattern.rstrip("/"), d) for d in dirs)
        else:
            hit = _git_match(pattern, path) or any(
                _git_match(pattern, "/".join(parts[: i + 1])) for i in range(len(parts) - 1)
            )
        if hit:
            ignored = not negate
    return ignored


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: sha1 of `blob <len>\\0<content>`."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The pointer file git stores in place of an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def tree_oid(children: list[tuple[str, str]]) -> str:
    """A stable id for a directory from its (name, oid) children (not git's exact tree hash)."""
    h = hashlib.sha1(usedforsecurity=False)
    for name, oid in sorted(children):
        h.update(f"{name}\0{oid}\n".encode())
    return h.hexdigest()


_FRONT_MATTER = re.compile(r"\A\s*---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)
MAX_CARD_BYTES = 256 * 1024  # front matter beyond this is not metadata anyone writes by hand
MAX_CARD_NODES = 20_000  # scalars + containers after alias expansion: a "billion laughs" card stops here
MAX_CARD_DEPTH = 64  # PyYAML's scanner is quadratic in flow nesting ("[[[[..." takes seconds) and recursive


def _flow_depth(text: str) -> int:
    """The deepest `[`/`{` nesting in `text`, counted without parsing (brackets in quotes count too: harmless)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _block_depth(text: str) -> int:
    """How many distinct indentation levels the lines use: a bound on block-style nesting."""
    return len({len(line) - len(line.lstrip(" ")) for line in text.splitlines() if line.strip()})


def _count_nodes(data: Any, budget: int) -> int:
    """Walk `data` (aliases expand to shared objects) and return what is left of `budget`; -1 when exceeded."""
    stack = [data]
    while stack:
        budget -= 1
        if budget < 0:
            return -1
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return budget


def card_metadata(readme: str) -> dict[str, Any] | None:
    """The YAML front matter of a README as a dict, None if absent; raises `ValueError` if malformed.

    The work is bounded: the text examined is capped, and a mapping that expands (through YAML aliases,
    or a self-referencing one) to more than `MAX_CARD_NODES` nodes is refused rather than served.
    """
    match = _FRONT_MATTER.match(readme[:MAX_CARD_BYTES])
    if match is None:
        return None
    text = match.group(1)
    if _flow_depth(text) > MAX_CARD_DEPTH or _block_depth(text) > MAX_CARD_DEPTH:
        raise ValueError(f"README.md metadata is nested too deeply (more than {MAX_CARD_DEPTH} levels)")
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ValueError(f"Invalid YAML in README.md metadata: {str(exc)[:200]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("README.md metadata must be a YAML mapping")
    if _count_nodes(data, MAX_CARD_NODES) < 0:
        raise ValueError(f"README.md metadata is too large (more than {MAX_CARD_NODES} values once aliases expand)")
    try:
        # Normalised to what JSON can carry (dates become strings), as the Hub's `cardData` is.
        return json.loads(json.dumps(data, default=str))
    except (ValueError, TypeError, RecursionError):
        raise ValueError("README.md metadata cannot be represented as JSON (a recursive alias?)") from None


# Names, as the Hub accepts them (ASCII; `huggingface_hub.utils.validate_repo_id` checks the same shape).
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
MAX_PATH = 1024  # bytes of a path in a repo; git itself allows more, the Hub's UI and our disk do not need it
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def valid_name(name: object) -> bool:
    """A namespace (user, org) or repo name: 1-96 of `A-Za-z0-9._-`, no `--`/`..`, not `.git`-suffixed."""
    return (
        isinstance(name, str)
        and _NAME.fullmatch(name) is not None
        and "--" not in name
        and ".." not in name
        and not name.endswith(".git")
    )


def valid_repo_id(repo_id: object) -> bool:
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        return False
    namespace, name = repo_id.split("/")
    return valid_name(namespace) and valid_name(name)


def valid_path(path: object) -> bool:
    """A path a commit may touch: relative, no `..`, `.` or empty segments, nothing under `.git/`, no control
    characters, at most `MAX_PATH` bytes."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
        return False
    if len(path.encode("utf-8", errors="replace")) > MAX_PATH or any(ord(c) < 32 or ord(c) == 127 for c in path):
        return False
    return all(s not in ("", ".", "..", ".git") for s in path.split("/"))


def valid_ref_name(name: object) -> bool:
    """A branch or tag name git's `check-ref-format` accepts (and not `refs/...`, not a commit id)."""
    if not isinstance(name, str) or not name or len(name) > 255 or name.startswith(("refs/", "-", "/")):
        return False
    if name == "@" or name.endswith((".", "/", ".lock")) or _REF_FORBIDDEN.search(name):
        return False
    if re.fullmatch(r"[0-9a-f]{40}", name):
        return False
    return all(not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))
