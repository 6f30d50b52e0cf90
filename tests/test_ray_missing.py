"""Without the `scale` extra, `--executor ray` is a one-line error naming it (exit 2), and nothing is written."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from factory.cli.main import cli
from factory.store import Store
from tests.helpers import write_jsonl


def test_executor_ray_without_ray_names_the_extra(tmp_path, monkeypatch):
    home = tmp_path / "home"
    seeds = write_jsonl(tmp_path / "p.jsonl", [{"instruction": f"Say {i}."} for i in range(3)])
    runner = CliRunner()
    imported = runner.invoke(cli, ["--home", str(home), "-q", "datasets", "import", str(seeds), "--name", "p"])
    assert imported.exit_code == 0
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: `import ray` raises ImportError
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    r = runner.invoke(cli, ["--home", str(home), "generate", "p", "--llm", "openai:stub-model", "--executor", "ray"])
    assert r.exit_code == 2
    assert 'pip install "dataset-factory[scale]"' in r.output and "Traceback" not in r.output
    assert Store(home).versions("p-answers") == []
