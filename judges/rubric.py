"""The judge plugin shape: a stage that has a judge LLM grade each row against a rubric, then filters.

A judge declares its rubric (prompt templates in `judges/prompts/`, a score scale, a default threshold) and
the columns it reads; this base class does the rest: one request per row (two for pairwise judges, which
see both orders), `repeats` samples per request, verdict parsing, keep/drop by `min_score`, counters, and
the reliability statistics that go into the manifest.

    @JUDGES.register
    class Quality(Judge):
        name = "quality"
        scale = Scale(1, 10)
        default_min_score = 7
        inputs = {"instruction": "str", "response": "str"}
        system_template, user_template = "quality_system.jinja", "quality_user.jinja"

Rows with nothing to judge (an empty instruction or response) are never sent and are counted `skipped`: left
out, or under `keep_all` kept with `judge_error` saying so. Rows whose judge call failed or whose reply does
not parse are counted as failed, never given a default
score and never kept by a filter: with `min_score` they are left out of the output, with `keep_all` they are
kept with `judge_error`. A reply that does not parse is taken out of the response cache, so a rerun asks
the judge again for exactly those rows. A judge failing on most rows stops the run early with the reason.
"""

from __future__ import annotations

from collections import deque
from contextlib import aclosing
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any, ClassVar, Literal

from pydantic import Field

from factory.config import StrictModel
from factory.errors import BadInput, FactoryError
from factory.judges import scoring as scorings
from factory.judges.parse import Scale, Verdict, VerdictError, json_object, parse_score
from factory.judges.reliability import Reliability
from factory.llm.types import ChatRequest, Completion
from factory.pipeline.stage import Stage, schema_columns, schema_recipe, structured_schema
from factory.records import user_turn
from factory.store.sources import require_columns

# Providers whose API takes a JSON schema for the reply (OpenAI json_schema, Anthropic output_config).
STRUCTURED_PROVIDERS = ("openai", "anthropic")
SCORE_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["rationale", "score"],
                "properties": {"rationale": {"type": "string"}, "score": {"type": "number"}}}


class JudgeConfig(StrictModel):
    """A judge run's options: `factory judge` flags, `--config FILE` and `--set` are made from these fields."""

    min_score: float | None = Field(
        None, description="Keep rows scoring at least this (default: the rubric's threshold).")
    keep_all: bool = Field(False, description="Keep every row with its score instead of filtering.")
    repeats: int = Field(1, ge=1, le=50, description="Judge each row K times; the score is the mean, and spread "
                                                      "and agreement are reported.")
    temperature: float | None = Field(None, ge=0, description="Judge temperature (default 0; 0.7 with --repeats).")
    max_tokens: int = Field(1024, ge=1, description="Longest judge reply.")
    structured: bool | None = Field(
        None, description="Ask for a JSON verdict by schema (default: where the provider supports it).")
    response_schema: str | None = Field(
        None, description="The verdict's schema: a pydantic model (module:Class) or JSON Schema file with a numeric "
                          "`score`; its fields are stored as typed columns.")
    scoring: Literal["auto", "verdict", "logprobs"] = Field(
        "auto", description="verdict: parse a written score; logprobs: the expectation over the score tokens' "
                            "probabilities (G-Eval), for hf: judges and OpenAI-compatible APIs returning logprobs; "
                            "auto: logprobs for hf:.")


@dataclass
class Sample:
    """One parsed judgement of a row (one of `repeats`)."""

    score: float
    rationale: str
    extra: dict[str, Any] = field(default_factory=dict)
    typed: dict[str, Any] = field(default_factory=dict)  # a --set response_schema verdict's typed columns


class JudgeStopped(FactoryError):
    pass


# What a rubric judge with one numeric score can do on a small local model (`small_model` of the rubric judges)
SCORES_BY_LOGPROBS = ("yes, by token probabilities (--scoring logprobs, the default for hf: judges): a score "
                      "for every row")


class Judge(Stage):
    """Base of every judge: subclasses declare the rubric; `process` scores and filters."""

    kind = "judge"
    scale: ClassVar[Scale] = Scale(1, 10)
    default_min_score: ClassVar[float | None] = None
    optional_inputs: ClassVar[dict[str, str]] = {}
    system_template: ClassVar[str] = ""
    user_template: ClassVar[str] = ""
    agreement_tolerance: ClassVar[float | None] = 1.0
    #: a rubric with one score per row can be scored by token probabilities (pairwise verdicts cannot)
    supports_logprobs: ClassVar[bool] = True
    outputs = {"judge_score": "float", "judge_rationale": "str", "judge_model": "str", "judge_error": "str",
               "judge_spread": "float", "judge_probs": "json"}
    Config = JudgeConfig
    config: JudgeConfig

    # A judge failing on most rows stops once this many rows are judged: more than half of the last
    # WINDOW rows failed (call errors or replies that do not parse).
    EARLY_STOP_MIN_ROWS: ClassVar[int] = 20
    EARLY_STOP_WINDOW: ClassVar[int] = 50

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__(config)
        if self.config.keep_all and self.config.min_score is not None:  # the score would silently filter nothing
            raise BadInput(f"--keep-all keeps every row, so --min-score {self.config.min_score:g} would do nothing; "
                           "pass one of them")
        if self.config.min_score is None and self.default_min_score is not None:
            self.config = self.config.model_copy(update={"min_score": float(self.default_min_score)})
        if self.config.min_score is not None and self.config.min_score not in self.scale:
            raise BadInput(f"--min-score {self.config.min_score:g} is outside the {self.name} rubric's scale "
                           f"{self.scale.label()}")
        for key in ("kept", "dropped", "failed"):
            self.counters[key] = 0
        self.reliability = Reliability(self.config.repeats, self.agreement_tolerance)
        self.llm_spec: str | None = None
        self.structured: bool | None = None
        self.scoring: str = "verdict"  # settled by `prepare`, once the judge model is known
        self._mass: list[float] = []
        self.user_schema = structured_schema(self.config.response_schema, tuple(self.outputs))
        if self.user_schema is not None and self.user_schema.columns().get("score") not in ("int", "float"):
            raise BadInput(f"response_schema {self.config.response_schema}: a verdict schema needs a numeric `score`")
        self._window: deque[bool] = deque(maxlen=self.EARLY_STOP_WINDOW)

    # -- what a rubric declares ------------------------------------------------------------------------
    def values(self, row: dict[str, Any]) -> dict[str, Any]:
        """Template variables for one row (besides `structured`)."""
        return {"instruction": user_turn(row), "response": row.get("response")}

    def missing(self, row: dict[str, Any]) -> str | None:
        """Why a row cannot be judged at all (nothing to judge), or None."""
        empty = [c for c in self.inputs if row.get(c) is None or (isinstance(row.get(c), str) and not row[c].strip())]
        return f"nothing to judge: {', '.join(empty)} is empty" if empty else None

    def blank(self, row: dict[str, Any]) -> str | None:
        return self.missing(row)  # nothing to judge: not sent, counted `skipped`

    def sendable(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Blank rows are counted `skipped`; with `keep_all` they still go to `process`, which keeps them, unsent,
        with `judge_error` (every row of the input is in the output)."""
        keep = super().sendable(rows)
        return rows if self.config.keep_all else keep

    def prompts(self, row: dict[str, Any], structured: bool) -> list[tuple[str, str]]:
        """(system, user) of each request a row needs: one, or one per order for pairwise judges."""
        values = {**self.values(row), "structured": structured, "logprobs": self.scoring == "logprobs"}
        return [(self.render(self.system_template, **values), self.render(self.user_template, **values))]

    def read(self, texts: list[str | None]) -> Sample:
        """One sample's verdict from the reply to each request of the row; raises `VerdictError`.

        A JSON verdict is read by its schema (validated with pydantic), not by a pattern; a server that ignored
        the schema and answered in prose still gets the prose reader.
        """
        obj = json_object(texts[0] or "") if self.structured else None
        if obj is not None:
            from pydantic import ValidationError

            schema = self.verdict_schema()
            try:
                obj = schema.model.model_validate(obj).model_dump(mode="json")
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(root)"
                raise VerdictError(f"the JSON verdict does not match its schema: {where}: {first['msg']}") from None
            score = float(obj["score"])
            if score not in self.scale:
                raise VerdictError(f"score {score:g} is outside the rubric's scale {self.scale.label()}")
            typed = self.user_schema.values(obj) if self.user_schema is not None else {}
            return Sample(score, str(obj.get("rationale") or ""), typed=typed)
        verdict: Verdict = parse_score(texts[0], self.scale)
        return Sample(verdict.score, verdict.rationale)

    def combine(self, samples: list[Sample]) -> dict[str, Any]:
        """Extra output columns from a row's parsed samples (pairwise: verdict, consistency)."""
        return {}

    def response_schema(self) -> dict[str, Any]:
        return SCORE_SCHEMA

    def verdict_schema(self):
        """The `OutputSchema` a structured reply is asked for and validated against."""
        if self.user_schema is not None:
            return self.user_schema
        if getattr(self, "_verdict", None) is None:
            from factory.llm.structured import OutputSchema, model_from_json_schema

            schema = self.response_schema()
            self._verdict = OutputSchema("answer", schema, model_from_json_schema(schema, "Verdict"))
        return self._verdict

    def recipe(self) -> dict[str, Any]:
        return schema_recipe(super().recipe(), self.user_schema)

    def output_schema(self) -> dict[str, Any]:  # type: ignore[override]
        return {**super().output_schema(), **schema_columns(self.user_schema)}

    def extra_stats(self) -> dict[str, Any]:
        return {}

    # -- plumbing --------------------------------------------------------------------------------------
    @classmethod
    def prompt_templates(cls) -> dict[str, str]:
        """Only this rubric's templates: editing another rubric's prompt must not change this one's version."""
        own = set(cls.templates())
        return {name: text for name, text in super().prompt_templates().items() if name in own}

    @classmethod
    def templates(cls) -> tuple[str, ...]:
        return tuple(t for t in (cls.system_template, cls.user_template) if t)

    @classmethod
    def check_inputs(cls, columns: list[str], what: str) -> None:
        require_columns(columns, list(cls.inputs), f"{what} (rubric {cls.name})",
                        hint="import it with `factory datasets import ... --map COLUMN=SOURCE_COLUMN`")

    @classmethod
    def describe(cls) -> dict[str, Any]:
        d = super().describe()
        d.update(scale=[cls.scale.low, cls.scale.high], default_min_score=cls.default_min_score,
                 optional_inputs=dict(cls.optional_inputs))
        d["scoring"] = (f"logprobs ({scorings.G_EVAL}: the expectation over the score tokens' probabilities) by "
                        "default for local hf: judges, --scoring logprobs for OpenAI-compatible APIs that return "
                        "logprobs; verdict (a written score, parsed) elsewhere") if cls.supports_logprobs else \
            "verdict only: a written A/B/tie choice, parsed"
        return d

    def use_structured(self, llm: Any) -> bool:
        if self.config.structured is not None:
            return self.config.structured
        provider = llm.provider
        return bool(getattr(provider, "supports_response_format", provider.name in STRUCTURED_PROVIDERS))

    def prepare(self, llm: Any) -> None:
        """Settle what depends on the judge model: its spec, structured replies, and the scoring."""
        self.llm_spec = llm.spec
        self.scoring = scorings.resolve(self.config.scoring, llm.provider, self.supports_logprobs, self.config.repeats)
        self.structured = False if self.scoring == "logprobs" else self.use_structured(llm)
        self._native = getattr(llm.provider, "choice_scoring", None) == "native"

    def requests(self, row: dict[str, Any], structured: bool) -> list[ChatRequest]:
        c = self.config
        if self.scoring == "logprobs":  # the score alone: a few tokens at most, prefilled up to it where possible
            return [ChatRequest(messages=[{"role": "user", "content": user}], system=system, temperature=0.0,
                                max_tokens=8, choices=list(scorings.choices(self.scale)),
                                prefix=scorings.PREFIX if self._native else None)
                    for system, user in self.prompts(row, False)]
        temperature = c.temperature if c.temperature is not None else (0.0 if c.repeats == 1 else 0.7)
        return [ChatRequest(messages=[{"role": "user", "content": user}], system=system, temperature=temperature,
                            max_tokens=c.max_tokens, n=c.repeats,
                            response_format=self.verdict_schema().json_schema if structured else None)
                for system, user in self.prompts(row, structured)]

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        self.prepare(llm)
        results: list[dict[str, Any] | None] = [None] * len(rows)
        plan: list[tuple[int, int]] = []  # request index -> (row index, request of the row)
        requests: list[ChatRequest] = []
        answers: dict[int, list[Completion | None]] = {}
        asked: dict[int, list[ChatRequest]] = {}
        blank: set[int] = set()
        for i, row in enumerate(rows):
            reason = self.missing(row)
            if reason is not None:  # never sent; kept (with the reason) only under keep_all, counted `skipped`
                results[i] = self._row(row, judge_error=reason)
                blank.add(i)
                continue
            row_requests = self.requests(row, self.structured)
            answers[i] = [None] * len(row_requests)
            asked[i] = row_requests
            plan += [(i, v) for v in range(len(row_requests))]
            requests += row_requests
        if requests:
            async with aclosing(llm.stream(requests, total=len(requests))) as stream:
                async for k, completion in stream:
                    i, v = plan[k]
                    got = answers[i]
                    got[v] = completion
                    if all(c is not None for c in got):
                        results[i] = self._judge(rows[i], got)  # type: ignore[arg-type]
                        if results[i]["judge_error"] is not None:
                            llm.forget(asked[i])  # an answer that gave no verdict is no answer: ask again next run
                        self._watch(results[i])
        return self._filter(results, blank)

    def _row(self, row: dict[str, Any], **values: Any) -> dict[str, Any]:
        """An output row: every output column present (the batch's first row fixes the columns)."""
        typed = self.user_schema.values(None) if self.user_schema is not None else {}
        return {**row, **dict.fromkeys(self.outputs), **typed, "judge_model": self.llm_spec, **values}

    def _judge(self, row: dict[str, Any], got: list[Completion]) -> dict[str, Any]:
        failed = next((c.error for c in got if c.error), None)
        if failed is not None:
            self.reliability.failed_rows += 1
            return self._row(row, judge_error=f"judge call failed: {failed}")
        if self.scoring == "logprobs":
            return self._judge_probs(row, got[0])
        samples, problems = [], []
        for s in range(self.config.repeats):
            texts = [c.texts[s] if s < len(c.texts) else None for c in got]
            try:
                samples.append(self.read(texts))
            except VerdictError as exc:
                problems.append(str(exc))
        self.reliability.unparsed_samples += len(problems)
        if not samples:
            self.reliability.failed_rows += 1
            many = f"none of {len(problems)} samples parsed; first: " if len(problems) > 1 else ""
            return self._row(row, judge_error=f"{many}{problems[0]}", judge_rationale=got[0].text)
        scores = [s.score for s in samples]
        spread = self.reliability.add(scores)
        return self._row(row, judge_score=fmean(scores), judge_rationale=samples[0].rationale, judge_spread=spread,
                         **samples[0].typed, **self.combine(samples))

    def _judge_probs(self, row: dict[str, Any], got: Completion) -> dict[str, Any]:
        try:
            score, probs, mass = scorings.read(got, scorings.choices(self.scale))
        except VerdictError as exc:
            self.reliability.failed_rows += 1
            return self._row(row, judge_error=str(exc), judge_rationale=got.text)
        self._mass.append(mass)
        self.reliability.add([score])
        return self._row(row, judge_score=score, judge_probs=probs, judge_spread=0.0)

    def loss_hint(self, counts: dict[str, Any]) -> str:
        if counts.get("failed", 0) >= counts.get("dropped", 0):
            return ("The judge gave no score: with hf: judges use --scoring logprobs (the default), elsewhere a "
                    "stronger --with; rerunning asks again for the failed rows.")
        return f"Lower --min-score (now {self.config.min_score:g}) or pass --keep-all to keep every scored row."

    def _watch(self, result: dict[str, Any]) -> None:
        """Stop early when the judge fails on most rows: better than paying for a whole useless run."""
        error = result["judge_error"]
        if error is not None and error.startswith("nothing to judge"):
            return  # the row's fault, not the judge's
        self._window.append(error is not None)
        w = self._window
        if len(w) >= self.EARLY_STOP_MIN_ROWS and sum(w) * 2 > len(w):
            raise JudgeStopped(
                f"stopped: the judge failed on {sum(w)} of the last {len(w)} rows (last: {error or 'ok'}); the "
                "verdicts it gave are cached, so fix the rubric or pick another judge with --with and rerun")

    def _filter(self, results: list[dict[str, Any] | None], blank: set[int]) -> list[dict[str, Any]]:
        out = []
        threshold = None if self.config.keep_all else self.config.min_score
        for i, r in enumerate(results):
            if r is None:  # no answer arrived (the run stopped): not a row of this version
                continue
            if i in blank:
                if self.config.keep_all:
                    out.append(r)
            elif r["judge_error"] is not None:
                self.counters["failed"] += 1  # never kept: a filter must not pass what it could not judge
                if self.config.keep_all:
                    out.append(r)
            elif threshold is None or r["judge_score"] >= threshold:
                self.counters["kept"] += 1
                out.append(r)
            else:
                self.counters["dropped"] += 1
        return out

    def merge(self, other: Any) -> None:
        """Fold in a worker's copy (`--executor ray`): its counters, reliability tallies and score-token mass."""
        from factory.judges.reliability import merge_tallies

        super().merge(other)
        merge_tallies(self.reliability, other.reliability)
        if hasattr(self, "consistency"):
            merge_tallies(self.consistency, other.consistency)
        self._mass.extend(other._mass)
        for key in ("llm_spec", "scoring", "structured"):  # settled by the first batch each copy ran
            if getattr(other, key, None) is not None:
                setattr(self, key, getattr(other, key))

    def manifest_extra(self) -> dict[str, Any]:
        """The `judge` manifest key: who judged, with which rubric, and how reliable it was."""
        c = self.config
        return {"judge": {
            "model": self.llm_spec,
            "rubric": {"name": self.name, "version": str(self.version), "scale": [self.scale.low, self.scale.high]},
            "min_score": c.min_score, "keep_all": c.keep_all, "repeats": c.repeats, "structured": self.structured,
            "scoring": self.scoring,
            "stats": {**self.reliability.summary(), **self.extra_stats(), **self._mass_stats()},
        }}

    def _mass_stats(self) -> dict[str, Any]:
        """How much probability the judge put on the score tokens at all (low: it wanted to say something else)."""
        if not self._mass:
            return {}
        return {"score_token_mass": round(fmean(self._mass), 4), "score_token_mass_min": round(min(self._mass), 4)}
