"""The import layering of CONVENTIONS.md ("The intended house"), checked by import-linter's `lint-imports`.

The contracts are in pyproject.toml (`[tool.importlinter]`). import-linter finds a package's modules by walking
its folder, but `factory.schemes`, `factory.judges`, ... live in other folders (setup.py's package-dir), so each
run gets a tree of links laid out the way the import names say: the repo's `factory/` entries, and `schemes/`,
`judges/`, ... linked in under their package names. It runs from outside the repo
root so nothing there shadows that tree.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def package_folders() -> dict[str, str]:
    """setup.py's FOLDERS: import package -> repo folder (the one list of them)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    return next(ast.literal_eval(node.value) for node in tree.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "FOLDERS")


def package_tree(root: Path, copy: tuple[str, ...] = ()) -> Path:
    """`root/factory`, the import package as one folder of links (`factory.recipes.shipped` at
    factory/recipes/shipped, ...); the modules in `copy` (`"store"` for factory.store) are copies, not links."""
    for name, folder in sorted(package_folders().items(), key=lambda item: item[0].count(".")):
        target = root.joinpath(*name.split("."))
        _unfold(target.parent, root)
        target.symlink_to(REPO / folder)
    for name in copy:
        target = root.joinpath("factory", *name.split("."))
        _unfold(target.parent, root)
        source = target.resolve()
        target.unlink()
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _unfold(directory: Path, root: Path) -> None:
    """Make `directory` a real folder: a link to a folder becomes a folder of links to its entries."""
    if directory == root or (directory.is_dir() and not directory.is_symlink()):
        directory.mkdir(parents=True, exist_ok=True)
        return
    _unfold(directory.parent, root)
    source = directory.resolve() if directory.is_symlink() else None
    if source is not None:
        directory.unlink()
    directory.mkdir()
    for item in source.iterdir() if source is not None else ():
        if item.name != "__pycache__":
            (directory / item.name).symlink_to(item)


def lint_imports(tree: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(REPO / "pyproject.toml")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_layering_contracts_hold(tmp_path: Path) -> None:
    result = lint_imports(package_tree(tmp_path / "tree"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    # every folder of the package was analysed, not just factory/
    count = sum(1 for folder in package_folders().values() for _ in (REPO / folder).rglob("*.py"))
    assert f"Analyzed {count} files" in result.stdout


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    tree = package_tree(tmp_path / "tree", copy=("store", "judges"))
    store_module = tree / "factory" / "store" / "diff.py"
    store_module.write_text(store_module.read_text() + "\nfrom factory.cli import main  # planted\n")
    judge_module = tree / "factory" / "judges" / "quality.py"
    judge_module.write_text(judge_module.read_text() + "\nimport factory.schemes.base  # planted\n")

    result = lint_imports(tree, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "the store imports no CLI, LLM layer or plugin BROKEN" in out
    assert "factory.store.diff -> factory.cli" in out
    assert "schemes and judges don't import each other BROKEN" in out
    assert "factory.judges.quality -> factory.schemes.base" in out
    assert "publish doesn't import trainers KEPT" in out
