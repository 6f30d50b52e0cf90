"""LLM specs (`openai:gpt-4o`, `anthropic:claude-sonnet-4-5`, `hf:PATH_OR_ID`, `vllm:ID`) and aliases.

Providers are found in `PROVIDERS`, a table of import paths, so the SDK of a provider is imported only
when it is used. Aliases (`gpt4`, `claude`, `local`, ...) are shortcuts that a user can override or extend
in `$FACTORY_HOME/config.yaml`:

    aliases:
      gpt4: openai:gpt-4-turbo
      teacher: openai:meta-llama/Llama-3.1-70B-Instruct   # with OPENAI_BASE_URL pointing at vllm serve
    providers:
      openai: {base_url: http://127.0.0.1:8000/v1}
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.config import StrictModel, read_yaml
from factory.errors import BadInput

PROVIDERS = {
    "openai": "factory.llm.openai:OpenAIProvider",
    "anthropic": "factory.llm.anthropic:AnthropicProvider",
    "hf": "factory.llm.hf:HFProvider",
    "vllm": "factory.llm.vllm:VLLMProvider",
}

ALIASES = {
    "gpt4": "openai:gpt-4",
    "gpt4-turbo": "openai:gpt-4-turbo",
    "gpt4o": "openai:gpt-4o",
    "gpt4o-mini": "openai:gpt-4o-mini",
    "gpt41": "openai:gpt-4.1",
    "claude": "anthropic:claude-sonnet-4-5",
    "claude-haiku": "anthropic:claude-haiku-4-5",
    "claude-opus": "anthropic:claude-opus-4-5",
    "claude2": "anthropic:claude-2.1",
    "local": "hf:",
}


class HomeLLMConfig(StrictModel):
    """The `llm`-related part of `$FACTORY_HOME/config.yaml`."""

    aliases: dict[str, str] = Field(default_factory=dict)
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)


def home_config(home: Path | None) -> HomeLLMConfig:
    path = home / "config.yaml" if home else None
    if path is None or not path.is_file():
        return HomeLLMConfig()
    from pydantic import ValidationError

    from factory.config import validation_message

    try:
        return HomeLLMConfig.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise BadInput(validation_message(exc, str(path))) from None


def parse_spec(spec: str, aliases: dict[str, str] | None = None) -> tuple[str, str]:
    """`"gpt4"` -> `("openai", "gpt-4")`; `"hf:"` -> `("hf", "")`."""
    table = {**ALIASES, **(aliases or {})}
    seen = set()
    while spec in table and spec not in seen:  # aliases may point at aliases
        seen.add(spec)
        spec = table[spec]
    provider, sep, model = spec.partition(":")
    if not sep:
        raise BadInput(f"unknown LLM {spec!r}: write PROVIDER:MODEL ({', '.join(PROVIDERS)}) "
                       f"or an alias ({', '.join(sorted(table))})")
    if provider not in PROVIDERS:
        raise BadInput(f"unknown LLM provider {provider!r} in {spec!r} (providers: {', '.join(PROVIDERS)})")
    if not model and provider != "hf":
        raise BadInput(f"{spec!r} names no model: write {provider}:MODEL")
    return provider, model


def provider_class(name: str):
    module, attr = PROVIDERS[name].split(":")
    return getattr(importlib.import_module(module), attr)
