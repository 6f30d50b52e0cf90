"""Generation schemes: stages that turn seed rows into instruction data with a teacher LLM.

Built-in schemes register themselves in `SCHEMES` when their module is imported below; third-party
schemes come in through the `factory.schemes` entry-point group.
"""

from factory.registry import Registry

SCHEMES: Registry = Registry("scheme", "factory.schemes")

# Built-in schemes register themselves on import.
from schemes import evol_instruct, lamini, orca  # noqa: E402,F401
