"""Self-play (SPIN): a model answers an SFT dataset's prompts; the human answer is `chosen`, its own `rejected`.

From each SFT row (`messages`, or `instruction`/`response` with optional `input`/`context` and `system`) the
prompt is the first user turn (`turns: first`, as in the SPIN paper) or the whole conversation up to the last
assistant turn (`turns: last`), and the ground truth is the assistant turn that follows it. The model under
training answers the prompt with the paper's sampling settings (temperature 0.8, top_p 0.95, 256 new tokens).
Rows are TRL's conversational preference format (`prompt`, `chosen`, `rejected` as lists of messages) with
the text forms beside them, the generating model and the SPIN iteration. A row whose answer equals the ground
truth gives DPO nothing to learn and a failed call is not an answer: both are counted and left out (a rerun
retries the failed ones).

    factory build self-play --from sft-data --llm hf:ckpt/sft --set max_tokens=128
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from factory.errors import BadInput, FactoryError
from factory.hashing import short_digest
from factory.llm.types import ChatRequest
from factory.papers import SPIN
from factory.records import user_turn
from factory.schemes import SCHEMES
from factory.schemes.base import Scheme, SchemeConfig

PROMPT_HINT = ("rename the columns with `factory datasets import FILE --map instruction=COLUMN --map "
               "response=COLUMN`, or build `messages` with `factory datasets convert sft`")


class SelfPlayConfig(SchemeConfig):
    temperature: float = Field(0.8, ge=0, description="sampling temperature of the model's answers (SPIN: 0.8)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling of the model's answers (SPIN: 0.95)")
    max_tokens: int = Field(256, ge=1, description="max new tokens of an answer (SPIN: 256)")
    seed: int | None = Field(0, description="sampling seed sent with each request; null lets a local model batch "
                                            "sampled requests (faster, not reproducible)")
    turns: Literal["first", "last"] = Field(
        "first", description="prompt = the first user turn (SPIN), or the conversation up to the last assistant turn")
    iteration: int = Field(0, ge=0, description="the SPIN iteration these answers belong to (recorded in each row)")
    model_revision: str | None = Field(None, description="names the generating weights when their path alone does "
                                                         "not (SPIN: the checkpoint's config hash and time)")


def split_row(row: dict[str, Any], turns: str) -> tuple[list[dict[str, str]], str] | None:
    """The prompt messages and the ground-truth answer of an SFT row; None when it has no answer to learn."""
    messages = [dict(role=m["role"], content=m["content"]) for m in row.get("messages") or []]
    if messages:
        answers = [i for i, m in enumerate(messages) if m["role"] == "assistant" and (m["content"] or "").strip()]
        if not answers:
            return None
        cut = answers[0] if turns == "first" else answers[-1]
        prompt = messages[:cut]
        if turns == "first":  # the system prompt and the turns before the first answer
            prompt = [m for m in prompt if m["role"] in ("system", "user")]
        if not any(m["role"] == "user" for m in prompt):
            return None
        return prompt, messages[cut]["content"]
    answer = (row.get("response") or "").strip()
    if not (row.get("instruction") or "").strip() or not answer:
        return None
    system = [{"role": "system", "content": row["system"]}] if row.get("system") else []
    return [*system, {"role": "user", "content": user_turn(row)}], row["response"]


@SCHEMES.register
class SelfPlay(Scheme):
    """The model answers SFT prompts; ground truth chosen, its own answer rejected (SPIN)."""

    name = "self-play"
    small_model = "yes: the model answers its own SFT prompts; that is the method (SPIN), at any size"
    version = "1"
    paper = SPIN
    inputs = {"messages": "list[message]"}  # or instruction + response (see check_inputs)
    reads = {"instruction": "str", "response": "str", "input": "str", "context": "str", "system": "str"}
    outputs = {"id": "str", "instruction": "str", "prompt": "list[message]", "chosen": "list[message]",
               "rejected": "list[message]", "chosen_text": "str", "rejected_text": "str", "scheme": "str",
               "model": "str", "iteration": "int", "seed_id": "str"}
    Config = SelfPlayConfig

    @classmethod
    def check_inputs(cls, columns: list[str], what: str) -> None:
        if "messages" in columns or {"instruction", "response"} <= set(columns):
            return
        raise BadInput(f"{what} has no prompts and answers: self-play needs `messages`, or `instruction` and "
                       f"`response` columns (has: {', '.join(columns) or 'none'}); {PROMPT_HINT}")

    def recipe(self) -> dict[str, Any]:
        if self.config.response_schema:
            raise BadInput("self-play: response_schema does not apply (the model's answers are free text, compared "
                           "with free-text ground truth)")
        return super().recipe()

    def request(self, prompt: list[dict[str, str]]) -> ChatRequest:  # type: ignore[override]
        c = self.config
        system = prompt[0]["content"] if prompt and prompt[0]["role"] == "system" else c.response_system
        turns = prompt[1:] if prompt and prompt[0]["role"] == "system" else prompt
        return ChatRequest(messages=turns, system=system, temperature=c.temperature, top_p=c.top_p,
                           max_tokens=c.max_tokens, seed=c.seed)

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        c = self.config
        pairs = []
        for row in rows:
            split = split_row(row, c.turns)
            if split is None:
                self.counters["no_answer"] += 1
                self.counters["dropped"] += 1
                continue
            pairs.append((row, *split))
        answers = await llm.generate([self.request(prompt) for _, prompt, _ in pairs])
        out = []
        for (row, prompt, truth), answer in zip(pairs, answers, strict=True):
            if not answer.ok or answer.text is None:
                self.counters["failed"] += 1
                continue
            if answer.text.strip() == truth.strip():
                self.counters["identical"] += 1
                self.counters["dropped"] += 1
                continue
            seed_id = str(row.get("id") or "")
            user = next(m["content"] for m in reversed(prompt) if m["role"] == "user")
            out.append({
                "id": f"{self.name}-{short_digest([seed_id, prompt, truth, c.iteration], 16)}",
                "instruction": user, "prompt": prompt,
                "chosen": [{"role": "assistant", "content": truth}],
                "rejected": [{"role": "assistant", "content": answer.text}],
                "chosen_text": truth, "rejected_text": answer.text, "scheme": self.name, "model": answer.model,
                "iteration": c.iteration, "seed_id": seed_id,
            })
        return out

    def check_result(self, counters: dict[str, int], source: Any) -> None:
        if not counters.get("kept"):
            raise FactoryError(
                f"self-play made no pairs from {source.ref}: {counters.get('failed', 0)} calls failed, "
                f"{counters.get('identical', 0)} answers equal the ground truth, {counters.get('no_answer', 0)} "
                "rows have no answer to learn")
