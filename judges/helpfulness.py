"""The `helpfulness` rubric: how much a response helps the person who asked, on a 1–5 scale.

A lighter filter than `quality` (it does not weigh harmlessness separately), and an example of a rubric on
a scale other than 1–10: replies are read on 1–5, so `[[7]]` or `8/10` from the judge is an error.
"""

from __future__ import annotations

from factory.judges import JUDGES
from factory.judges.parse import Scale
from factory.judges.rubric import SCORES_BY_LOGPROBS, Judge


@JUDGES.register
class Helpfulness(Judge):
    """Rate how helpful a response is to its instruction, from 1 (no help) to 5 (fully solves it).

    Rows below the threshold (default 4) are dropped. Reads `instruction` (with `input`/`context`) and
    `response`.
    """

    name = "helpfulness"
    small_model = SCORES_BY_LOGPROBS
    version = "1"
    scale = Scale(1, 5)
    default_min_score = 4.0
    inputs = {"instruction": "str", "response": "str"}
    optional_inputs = {"input": "str", "context": "str"}
    system_template = "helpfulness_system.jinja"
    user_template = "answer_user.jinja"
