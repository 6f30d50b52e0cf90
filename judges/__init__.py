"""LLM judges: stages that score rows with a judge LLM and a rubric, and filter on the score.

Built-in judges register themselves in `JUDGES` when their module is imported below; third-party
judges come in through the `factory.judges` entry-point group.
"""

from factory.registry import Registry

JUDGES: Registry = Registry("judge", "factory.judges")

# Built-in judges register themselves on import (after JUDGES exists: they import it from here).
from judges import helpfulness, mt_bench, quality  # noqa: E402, F401
