"""The `quality` rubric: a strong LLM as a stand-in for a human rater, in the spirit of OpenBezoar's GPT-4 filter.

Each instruction/response pair is rated 1–10 on instruction following, helpfulness, accuracy and
harmlessness, with a short rationale; `factory judge REF --with gpt4` keeps rows scoring 7 or more.
"""

from __future__ import annotations

from factory.judges import JUDGES
from factory.judges.parse import Scale
from factory.judges.rubric import SCORES_BY_LOGPROBS, Judge
from factory.papers import OPENBEZOAR


@JUDGES.register
class Quality(Judge):
    """Rate a response 1–10 on instruction following, helpfulness, accuracy and harmlessness.

    The rating stands in for a human preference label: rows below the threshold (default 7) are dropped.
    Reads `instruction` (with `input`/`context` when present) and `response`.
    """

    name = "quality"
    small_model = SCORES_BY_LOGPROBS
    version = "1"
    paper = OPENBEZOAR
    scale = Scale(1, 10)
    default_min_score = 7.0
    inputs = {"instruction": "str", "response": "str"}
    optional_inputs = {"input": "str", "context": "str"}
    system_template = "quality_system.jinja"
    user_template = "answer_user.jinja"
