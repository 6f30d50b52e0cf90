"""The shape every stage shares (schemes, judges, dataset transforms).

A stage class declares what it is and what it reads and writes; the pipeline checks the columns before a
run and names the output version from the stage's name, version, config and prompt templates.

    class Evol(Stage):
        kind = "scheme"
        name = "evol-instruct"
        version = "1"
        paper = Paper(title="WizardLM: ...", url="https://arxiv.org/abs/2304.12244")
        inputs = {"instruction": "str"}
        outputs = {"instruction": "str", "response": "str", "messages": "list[message]"}
        Config = EvolConfig            # a factory.config.StrictModel

Prompt templates live in a `prompts/` directory beside the stage's module; their text is part of the
version id, so editing a prompt makes a new version.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from factory.config import StrictModel
from factory.store.manifest import StageInfo
from factory.store.sources import require_columns

TEMPLATE_SUFFIXES = (".jinja", ".txt", ".md")


@dataclass(frozen=True)
class Paper:
    title: str
    url: str
    authors: str = ""
    year: int | None = None
    bibtex: str = ""


class NoConfig(StrictModel):
    """For stages without options."""


class Stage:
    kind: ClassVar[str] = "stage"
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    paper: ClassVar[Paper | None] = None
    inputs: ClassVar[dict[str, str]] = {}
    outputs: ClassVar[dict[str, str]] = {}
    Config: ClassVar[type[StrictModel]] = NoConfig

    @classmethod
    def info(cls) -> StageInfo:
        return StageInfo(kind=cls.kind, name=cls.name, version=str(cls.version))

    @classmethod
    def prompts_dir(cls) -> Path:
        return Path(inspect.getfile(cls)).parent / "prompts"

    @classmethod
    def prompt_templates(cls) -> dict[str, str]:
        """Template file name -> text, for every template in `prompts/`."""
        d = cls.prompts_dir()
        if not d.is_dir():
            return {}
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(d.iterdir()) if p.suffix in TEMPLATE_SUFFIXES}

    @classmethod
    def check_inputs(cls, columns: list[str], what: str) -> None:
        require_columns(columns, list(cls.inputs), what)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What `factory schemes inspect` / `factory judges inspect` print."""
        fields = {
            name: {"type": getattr(f.annotation, "__name__", str(f.annotation)),
                   "default": None if f.is_required() else f.get_default(call_default_factory=True),
                   "help": f.description or ""}
            for name, f in cls.Config.model_fields.items()
        }
        return {"name": cls.name, "kind": cls.kind, "version": str(cls.version),
                "paper": None if cls.paper is None else {"title": cls.paper.title, "url": cls.paper.url},
                "summary": (inspect.getdoc(cls) or "").split("\n\n")[0],
                "inputs": dict(cls.inputs), "outputs": dict(cls.outputs), "config": fields,
                "prompts": sorted(cls.prompt_templates())}
