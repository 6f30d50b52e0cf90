"""The package is one import package, `factory`: nothing else lands in site-packages, nothing else can shadow it.

The repository's folders (`schemes/`, `judges/`, ...) install as `factory.schemes`, `factory.judges`, ...
(setup.py maps them). Moving them must not change what any stage's output is called: the version ids
below were computed with the layout before the move (six top-level packages) and must stay the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO

# Computed before the move, on the same inputs: a stage's version id depends on its name, version, config,
# prompts and inputs, never on the module it lives in.
# Changed on purpose since the move (issue 12): judges got a `scoring` option and a logprobs branch in their
# prompts; lamini (version 2) a novelty filter and a `requests` option.
GOLDEN_STAGE_IDS = {
    "judge:helpfulness": "35111cc44526",
    "judge:mt-bench-pair": "279fa7081000",
    "judge:mt-bench-single": "ed851c1dbd32",
    "judge:quality": "1585dcd02933",
    "scheme:evol-instruct": "b250232b63d5",
    "scheme:lamini": "508ea2da6b3b",
    "scheme:orca": "9b9c3f1b46ca",
}
GOLDEN_IMPORT_IDS = {"dolly": "ebcfbadfb159", "flan": "5906001475a4", "hh": "4784e0cea2d4",
                     "topics": "7a8364686e86", "benchmark_prompts": "d8d6c4fbfc5d"}
# `factory <verb> ...` on the imported dolly / hh seeds -> the version the old layout made.
GOLDEN_TRANSFORMS = [
    (["dedup", "dolly"], "dolly-dedup@ba66d742ea79"),
    (["dedup", "dolly", "--near", "--name", "dn"], "dn@bfb522dee2e4"),
    (["filter", "dolly", "--min-words", "3", "--name", "fl"], "fl@1cb46d9074d9"),
    (["datasets", "convert", "sft", "dolly", "--name", "sft"], "sft@50e3b5ff36c7"),
    (["datasets", "convert", "hh-rlhf", "hh", "--name", "hhp"], "hhp@c7fb73013cce"),
]


def test_stage_version_ids_survive_the_move():
    from factory.judges import JUDGES
    from factory.schemes import SCHEMES
    from factory.store import InputRef
    from factory.store.manifest import version_id

    src = InputRef(name="seed", version="0123456789ab")
    got = {}
    for registry in (SCHEMES, JUDGES):
        for cls in registry:
            key = f"{cls.kind}:{cls.name}"
            if key in GOLDEN_STAGE_IDS:
                config = {**cls().recipe(), "limit": None, "llm": "openai:gpt-4o"}
                got[key] = version_id(cls.info(), config, [src], cls.prompt_templates())
    assert got == GOLDEN_STAGE_IDS


def test_import_and_transform_version_ids_survive_the_move(tmp_path):
    from click.testing import CliRunner

    from factory.cli.main import cli
    from factory.data import resolve_seed
    from factory.store import Store
    from factory.store.importer import import_dataset

    store = Store(tmp_path / "home")
    for seed, expected in GOLDEN_IMPORT_IDS.items():
        version, _ = import_dataset(store, str(resolve_seed(f"seeds:{seed}")), seed.replace("_", "-"))
        assert version.version == expected, seed
    runner = CliRunner()
    for args, expected in GOLDEN_TRANSFORMS:
        result = runner.invoke(cli, ["--home", str(tmp_path / "home"), *args])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().splitlines()[-1] == expected, args


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("*.whl")
    return whl


def test_wheel_holds_one_top_level_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert z.read(top_level).decode().split() == ["factory"]
        roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
        assert roots == {"factory"}
        # the mapped folders and their data files are inside the one package
        for path in ("factory/schemes/evol_instruct/__init__.py", "factory/judges/prompts/quality_system.jinja",
                     "factory/cards/model.md.jinja", "factory/hub/server.py", "factory/trainers/sft.py"):
            assert path in names, path
    assert wheel.name.startswith("dataset_factory-")


def _outside_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env


def test_old_top_level_names_are_not_importable_outside_the_repo(tmp_path):
    for name in ("schemes", "judges", "trainers", "publish", "cards"):
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=tmp_path, env=_outside_env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, name
    r = subprocess.run([sys.executable, "-m", "factory", "schemes", "list"], cwd=tmp_path, env=_outside_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "evol-instruct" in r.stdout, r.stderr


def test_an_unrelated_judges_distribution_does_not_break_factory(tmp_path):
    """The PyPI package `judges` (another LLM-judge library) owns a top-level `judges/`: ours must not care."""
    site = tmp_path / "site"
    (site / "judges").mkdir(parents=True)
    (site / "judges" / "__init__.py").write_text("raise ImportError('this is somebody else\\'s judges package')\n")
    info = site / "judges-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: judges\nVersion: 0.1.0\n")
    (info / "top_level.txt").write_text("judges\n")
    (info / "RECORD").write_text("")
    # cwd holding a `cards/` folder and a `publish.py` must not shadow ours either
    work = tmp_path / "work"
    (work / "cards").mkdir(parents=True)
    (work / "cards" / "__init__.py").write_text("raise ImportError('shadowed')\n")
    (work / "publish.py").write_text("raise ImportError('shadowed')\n")
    env = {**_outside_env(), "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-m", "factory", "judges", "list"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "quality" in r.stdout and "mt-bench-pair" in r.stdout
    r = subprocess.run([sys.executable, "-c", "import factory.cards.render, factory.publish.publisher; print('ok')"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def _plugin_package(root: Path, package: str, names: dict[str, str]) -> None:
    (root / package).mkdir()
    (root / package / "__init__.py").write_text(
        f"from factory.registry import Registry\nR = Registry('thing', 'x.none', package={package!r})\n")
    for module, name in names.items():
        (root / package / f"{module}.py").write_text(
            f"from factory.pipeline import Stage\nfrom {package} import R\n\n"
            f"@R.register\nclass S(Stage):\n    name = {name!r}\n")


def test_builtin_plugins_are_found_by_scanning_and_duplicates_refused(tmp_path, monkeypatch):
    import importlib

    from factory.errors import FactoryError

    _plugin_package(tmp_path, "plugs_ok", {"one": "one", "two": "two"})
    _plugin_package(tmp_path, "plugs_dup", {"a": "same", "b": "same"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.import_module("plugs_ok").R.names() == ["one", "two"]  # one new file = one new plugin
    with pytest.raises(FactoryError, match="two things named 'same'"):
        importlib.import_module("plugs_dup").R.names()
