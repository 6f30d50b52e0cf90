"""One LLM interface over OpenAI, Anthropic, local transformers and vLLM.

    from factory.llm import ChatRequest, load_llm
    llm = load_llm("gpt4o-mini", home=".factory", concurrency=128, budget_usd=5)
    answers = llm.generate_sync([ChatRequest(messages=[{"role": "user", "content": "Hi"}])])

Heavy SDKs are imported when a provider is made, not when this package is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.llm.types import ChatRequest, Completion

__all__ = ["ChatRequest", "Completion", "has_batch_api", "load_llm"]


def has_batch_api(spec: str, home: str | Path | None = None) -> bool:
    """Whether `spec`'s provider has a batch API (`--batch`): openai: and anthropic: do, local models do not."""
    from factory.llm.spec import home_config, parse_spec, provider_class

    name, _ = parse_spec(spec, home_config(Path(home).absolute() if home else None).aliases)
    return bool(provider_class(name).batch_api)


def load_llm(spec: str, home: str | Path | None = None, provider_options: dict[str, Any] | None = None,
             **settings: Any):
    """An `LLM` for `spec` (provider:model or alias), with run settings (`concurrency`, `budget_usd`, ...)."""
    from pydantic import ValidationError

    from factory.config import validation_message
    from factory.errors import BadInput
    from factory.llm.cache import ResponseCache
    from factory.llm.pricing import PriceTable
    from factory.llm.runner import LLM, RunSettings
    from factory.llm.spec import home_config, parse_spec, provider_class

    home_path = Path(home).absolute() if home else None
    config = home_config(home_path)
    try:
        run = RunSettings(**settings)
    except ValidationError as exc:  # `--budget nan` passes click's range check; the model's own does not
        raise BadInput(validation_message(exc, "run settings", RunSettings)) from None
    name, model = parse_spec(spec, config.aliases)
    options = {**config.providers.get(name, {}), **(provider_options or {})}
    options.setdefault("concurrency", run.concurrency)
    options.setdefault("timeout_s", run.timeout_s)
    if name == "hf":
        options.setdefault("home", home_path)
        options.setdefault("batch_size", run.batch_size)
    cls = provider_class(name)
    if run.batch and not cls.batch_api:  # before a local model loads for nothing
        raise BadInput(f"--batch needs a provider with a batch API (openai:, anthropic:), not {name}:")
    provider = cls(model, **options)
    cache = ResponseCache(home_path / "cache" / "llm.sqlite") if home_path and run.cache else None
    price = PriceTable(config.prices).lookup(name, model)
    return LLM(provider, run, cache, price)
