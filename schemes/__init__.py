"""Generation schemes: stages that turn seed rows into instruction data with a teacher LLM.

Built-in schemes register themselves in `SCHEMES` when the registry first scans this package; third-party
schemes come in through the `factory.schemes` entry-point group.
"""

from factory.registry import Registry

SCHEMES: Registry = Registry("scheme", "factory.schemes", package="factory.schemes")
