"""The shape every stage shares (schemes, judges, dedup, filters, format conversions).

A stage class declares what it is and what it reads and writes; the pipeline checks the columns before a
run and names the output version from the stage's name, version, config and prompt templates. One executor
(`factory.pipeline.execute.run_stage`) runs every stage, so all get the same version naming, counters and
`describe()`.

    class Evol(Stage):
        kind = "scheme"
        name = "evol-instruct"
        version = "1"
        paper = Paper(title="WizardLM: ...", url="https://arxiv.org/abs/2304.12244")
        inputs = {"instruction": "str"}
        outputs = {"instruction": "str", "response": "str", "messages": "list[message]"}
        Config = EvolConfig            # a factory.config.StrictModel

        async def process(self, rows, llm):   # a batch of input rows -> output rows
            ...

A stage that needs the whole table at once (dedup compares every row with every other) says so:

    class DedupExact(Stage):
        whole_table = True

        def process_table(self, df):          # the input's rows -> the output's rows (a polars DataFrame)
            ...

A row with nothing to ask the model about (a null or blank `instruction`, or whatever `prompt_columns` names)
is not sent: the executor leaves it out before `process` and counts it `skipped` (`blank` says why).

Prompt templates live in a `prompts/` directory beside the stage's module (Jinja, rendered with
`self.render("name.jinja", **values)`); their text is part of the version id, so editing a prompt makes
a new version.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from factory.config import StrictModel
from factory.records import Paper
from factory.store.manifest import StageInfo
from factory.store.sources import require_columns, require_types

TEMPLATE_SUFFIXES = (".jinja", ".txt", ".md")


class NoConfig(StrictModel):
    """For stages without options."""


def polars_type(name: str):
    """The Parquet (polars) type of a column type name used in `inputs` / `outputs`."""
    import polars as pl

    message = pl.Struct({"role": pl.String, "content": pl.String})
    return {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean,
            "list[str]": pl.List(pl.String), "list[message]": pl.List(message), "json": pl.String}[name]


class Stage:
    """Subclass, declare the class attributes, implement `process`. An instance carries its config."""

    kind: ClassVar[str] = "stage"
    name: ClassVar[str]
    version: ClassVar[str] = "1"
    paper: ClassVar[Paper | None] = None
    inputs: ClassVar[dict[str, str]] = {}
    outputs: ClassVar[dict[str, str]] = {}
    Config: ClassVar[type[StrictModel]] = NoConfig
    # True: the executor hands `process_table` the whole input table instead of `process` row batches.
    whole_table: ClassVar[bool] = False
    # Can a small local model (the embedded 135M) do this step, and how: "yes: ...", "poorly: ..." or "no: ..."
    small_model: ClassVar[str] = ""
    # The inputs a request is made of: a row where one is null or blank is skipped (None: every `str` input).
    prompt_columns: ClassVar[tuple[str, ...] | None] = None
    # Columns read when present, besides `inputs` (name -> type): their types are checked like the inputs'.
    reads: ClassVar[dict[str, str]] = {}

    def __init__(self, config: StrictModel | None = None):
        self.config = config if config is not None else self.Config()
        self.counters: Counter[str] = Counter()  # stage-specific counts for the manifest (e.g. "eliminated")

    def recipe(self) -> dict[str, Any]:
        """What, besides the prompts, makes this stage's output what it is: part of the version id."""
        return self.config.model_dump(mode="json")

    def jobs(self, source: Any, limit: int | None, size: int, target: int | None = None
             ) -> Iterator[list[dict[str, Any]]]:
        """The batches of work `process` gets: batches of `source`'s rows unless a stage plans its own.

        `target` is the number of output rows wanted (`--n`), for stages that plan their work from it.
        """
        from factory.pipeline.execute import batches

        return batches(source, limit, size)

    def bind(self, columns: list[str]) -> None:
        """Settle config defaults that depend on the input's columns, before the version is named."""

    def blank(self, row: dict[str, Any]) -> str | None:
        """Why `row` has nothing to send to the model (e.g. "instruction is empty"), or None."""
        columns = self.prompt_columns
        if columns is None:
            columns = tuple(c for c, t in self.inputs.items() if t == "str")
        empty = [c for c in columns if is_blank(row.get(c))]
        return f"{', '.join(empty)} is empty" if empty else None

    def sendable(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows worth a request; the others are left out and counted `skipped` (never sent, never paid)."""
        keep = [r for r in rows if self.blank(r) is None]
        if len(keep) < len(rows):
            self.counters["skipped"] += len(rows) - len(keep)
        return keep

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        """Turn a batch of input rows into output rows; a row whose LLM call failed keeps an `error`."""
        raise NotImplementedError

    def process_table(self, df: Any) -> Any:
        """Whole-table stages: the input's rows (a polars DataFrame) -> the output's; counts go to `counters`."""
        raise NotImplementedError

    def merge(self, other: Stage) -> None:
        """Fold in the state of a copy of this stage that ran some of the jobs elsewhere (a Ray worker)."""
        self.counters.update(other.counters)

    def manifest_extra(self) -> dict[str, Any]:
        """Keys this stage adds to its output's manifest (a judge's model, rubric and statistics)."""
        return {}

    def loss_hint(self, counts: dict[str, Any]) -> str:
        """The likely fix when this stage lost most of its rows (said with the counters that tell why)."""
        if counts.get("failed"):
            return "Rerunning the same command retries the failed rows; check the model and the errors above."
        return "Check the stage's options (--help)."

    def check_result(self, counters: dict[str, int], source: Any) -> None:
        """Raise before a useless version is stored (e.g. nothing converted); the default accepts anything."""

    def render(self, template: str, **values: Any) -> str:
        """Render a template from `prompts/` (Jinja; a missing variable is an error, not an empty string)."""
        return _environment(self.prompts_dir()).get_template(template).render(**values).strip()

    @classmethod
    def output_schema(cls) -> dict[str, Any]:
        return {name: polars_type(t) for name, t in cls.outputs.items()}

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
    def check_types(cls, schema: Any, what: str) -> None:
        """A column this stage reads as text or messages that holds something else (an int, a list where text is
        expected) is a one-line error naming it: `schema` is the input's polars schema."""
        wanted = {**cls.reads, **getattr(cls, "optional_inputs", {}), **cls.inputs}
        require_types(schema, wanted, what)

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
                "prompts": sorted(cls.prompt_templates()), "small_model": cls.small_model}


def is_blank(value: Any) -> bool:
    """Null, a string of whitespace, or an empty list: nothing to ask a model about."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple):
        return not value or all(is_blank(v) for v in value)
    return False


def structured_schema(spec: str | None, reserved: tuple[str, ...] = ()):
    """The `OutputSchema` of a stage's `response_schema` option, or None."""
    if not spec:
        return None
    from factory.llm.structured import load_schema

    return load_schema(spec, reserved)


def schema_recipe(recipe: dict[str, Any], schema: Any) -> dict[str, Any]:
    """A recipe with the schema's content in place of its name: a version id changes when the schema does.

    Without a schema the key is dropped, so stages that take none keep the version ids they always had.
    """
    recipe = dict(recipe)
    recipe.pop("response_schema", None)
    if schema is not None:
        recipe["response_schema"] = schema.fingerprint()
    return recipe


def schema_columns(schema: Any) -> dict[str, Any]:
    """The typed output columns a structured-output schema adds."""
    return {} if schema is None else {name: polars_type(t) for name, t in schema.columns().items()}


def structured_values(schema: Any, completion: Any) -> tuple[dict[str, Any], str | None]:
    """(typed column values, error) of an answer; the error is the call's, or why the reply breaks the schema."""
    if schema is None:
        return {}, completion.error
    if completion.error is not None:
        return schema.values(None), completion.error
    try:
        return schema.values(schema.validate(completion.text)), None
    except ValueError as exc:
        return schema.values(None), str(exc)


@lru_cache(maxsize=64)
def _environment(directory: Path):
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(directory), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=False, autoescape=False)
