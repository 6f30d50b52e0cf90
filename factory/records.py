"""The records several layers share, defined once, low in the house (it imports nothing above `factory.errors`).

    Paper             a paper a stage implements; the cards cite it (title, url, authors, year, BibTeX)
    Cost              what a stage's LLM calls cost: the LLM layer counts it, the store's manifest keeps it
    InputRef          a dataset version by name and id: a manifest's inputs, a checkpoint's datasets
    CheckpointRecord  `factory.json`, what a checkpoint directory holds (written by trainers, read by publish)
    REPO_ID, HUB_ID   a Hub repo id (`ORG/NAME`), and a Hub id that may lack the namespace (`gpt2`)
    user_turn, conversation   the user message of an instruction row, and TRL's `messages` (docs/records.md)
    CHATML            a ChatML chat template whose assistant turns carry TRL's generation markers

A type that two layers need goes here rather than into either of them, so neither has to import the other.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factory.errors import BadInput
from factory.fsutil import finish_swap

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class Paper:
    """A paper, as a stage declares it (`paper = Paper(title=..., url=...)`) and as the cards cite it."""

    title: str
    url: str
    authors: str = ""
    year: int | None = None
    bibtex: str = ""
    key: str = ""  # the BibTeX key; a stage's paper without one is keyed by the stage (`with_key`)

    @classmethod
    def coerce(cls, value: Any) -> Paper | None:
        """A `Paper`, or the same keys in a dict or on an object (a manifest, a plugin's own class); None if it
        has no title."""
        if value is None or isinstance(value, Paper):
            return value
        get = value.get if isinstance(value, dict) else (lambda k, d=None: getattr(value, k, d))
        if not get("title"):
            return None
        year = get("year")
        return cls(title=str(get("title")), url=str(get("url") or ""), authors=str(get("authors") or ""),
                   year=year if isinstance(year, int) else None, bibtex=str(get("bibtex") or ""),
                   key=str(get("key") or ""))

    def with_key(self, fallback: str) -> Paper:
        """This paper with a BibTeX key: its own, else `fallback` reduced to lowercase letters and digits."""
        return self if self.key else replace(self, key=re.sub(r"[^a-z0-9]+", "", fallback.lower()) or "paper")

    def make_bibtex(self) -> str:
        fields = [f"  title = {{{self.title}}}"]
        if self.authors:
            fields.append(f"  author = {{{self.authors}}}")
        if self.year:
            fields.append(f"  year = {{{self.year}}}")
        arxiv = re.search(r"arxiv\.org/abs/([0-9]{4}\.[0-9]{4,5})", self.url)
        if arxiv:
            fields += [f"  eprint = {{{arxiv.group(1)}}}", "  archivePrefix = {arXiv}"]
        fields.append(f"  url = {{{self.url}}}")
        return "@misc{" + (self.key or "paper") + ",\n" + ",\n".join(fields) + "\n}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bibtex": self.bibtex or self.make_bibtex()}


class Cost(BaseModel):
    """Requests, tokens and dollars of a stage's LLM calls (a manifest's `cost`)."""

    model_config = ConfigDict(extra="forbid")
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0


class InputRef(BaseModel):
    """A dataset version: `name@version`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    version: str

    def ref(self) -> str:
        return f"{self.name}@{self.version}"


FACTORY_JSON = "factory.json"
# keys only some checkpoints have: left out of the file when unset (docs/training.md)
_OPTIONAL = ("tuning", "notes", "resumed_from", "merged_from")


class CheckpointRecord(BaseModel):
    """`factory.json`, the lineage record of a checkpoint directory; its keys are documented in docs/training.md.

    Keys a newer factory (or a user) added are kept, so reading and rewriting the file loses nothing.
    """

    model_config = ConfigDict(extra="allow")
    kind: Literal["checkpoint"] = "checkpoint"
    method: str  # sft | dpo | sft-sequential
    base_model: str  # the --model spec as given: a path or a Hub id
    adapter: bool  # true: a PEFT adapter; false: full weights
    datasets: list[InputRef] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    config_hash: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    stages: list[Any] = Field(default_factory=list)
    created: str = ""
    eval: dict[str, Any] = Field(default_factory=dict)
    tuning: Literal["lora", "qlora", "full"] | None = None
    notes: list[str] | None = None
    resumed_from: str | None = None
    merged_from: dict[str, str] | None = None  # {path, config_hash} of the adapter a merge-adapter run merged

    @classmethod
    def read(cls, directory: str | Path) -> CheckpointRecord:
        """The record of `directory`; BadInput, naming the file, when it is missing, not JSON or not a checkpoint."""
        path = Path(directory) / FACTORY_JSON
        if not path.parent.exists():
            finish_swap(path.parent.absolute())  # a --overwrite killed between its renames: finish it first
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path} is not readable JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("kind") != "checkpoint":
            raise BadInput(f"{path} does not describe a checkpoint (kind must be 'checkpoint')")
        missing = [k for k in ("method", "base_model", "adapter") if k not in data]
        if missing:
            raise BadInput(f"{path} lacks {', '.join(missing)}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise BadInput(f"{path}: {where}: {err['msg']}") from None

    @classmethod
    def find(cls, directory: str | Path) -> CheckpointRecord | None:
        """The record of `directory`, or None when it has no `factory.json`."""
        if not Path(directory).exists():
            finish_swap(Path(directory).absolute())
        return cls.read(directory) if (Path(directory) / FACTORY_JSON).is_file() else None

    def document(self) -> dict[str, Any]:
        """The JSON document, keys in the documented order; optional keys only when set."""
        doc = self.model_dump(mode="json")
        return {k: v for k, v in doc.items() if not (k in _OPTIONAL and v is None)}

    def write(self, directory: str | Path) -> Path:
        """Write `factory.json` atomically: a reader sees the old file or the new one, never half of one."""
        return write_json_atomic(Path(directory) / FACTORY_JSON, self.document())


def record_eval(directory: str | Path, scores: dict[str, Any]) -> Path:
    """Add benchmark scores to the `eval` of `directory`'s `factory.json`, keeping every other key as it is."""
    path = Path(directory) / FACTORY_JSON
    data = json.loads(path.read_text()) if path.is_file() else {}
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a JSON object")
    data["eval"] = {**(data.get("eval") or {}), **scores}
    return write_json_atomic(path, data)


def write_json_atomic(path: Path, data: Any) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def user_turn(row: dict[str, Any]) -> str:
    """The user message of an SFT row: instruction, then its input after a blank line (docs/records.md)."""
    instruction = (row.get("instruction") or "").strip()
    extra = (row.get("input") or row.get("context") or "").strip()
    return f"{instruction}\n\n{extra}" if extra else instruction


def conversation(system: str | None, turns: list[dict[str, str]], answer: str) -> list[dict[str, str]]:
    """TRL's `messages`: an optional system turn, the prompt turns, then the assistant's answer."""
    head = [{"role": "system", "content": system}] if system else []
    return [*head, *turns, {"role": "assistant", "content": answer}]


# `{% generation %}` marks what the assistant says, so TRL can train on the answers only.
CHATML = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")
