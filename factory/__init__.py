"""factory: build instruction datasets with LLMs, judge them, train small models, publish to the Hub."""

__version__ = "0.1.0"
