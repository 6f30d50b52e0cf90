"""LLM judges: stages that score rows with a judge LLM and a rubric, and filter on the score.

Built-in judges register themselves in `JUDGES` when the registry first scans this package; third-party
judges come in through the `factory.judges` entry-point group.
"""

from factory.registry import Registry

JUDGES: Registry = Registry("judge", "factory.judges", package="factory.judges")
