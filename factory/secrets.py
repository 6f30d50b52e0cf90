"""Keep secrets out of manifests, cards, logs and error messages."""

from __future__ import annotations

import os
import re
from typing import Any

REDACTED = "***"
# A key names a secret when its last word does: `api_key`, `hf_token`, `client_secret`, `password` ...
# but not `max_tokens` or `prompt_tokens` (counts), nor `sort_key` (a column).
_SECRET_KEY = re.compile(r"^(key|authorization)$|(^|[_\-.])(api[_-]?key|apikey|secret[_-]?key|access[_-]?key|"
                         r"token|secret|password|passwd|credentials?)$", re.I)
SECRET_ENV_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TOGETHER_API_KEY")
# Secrets this process was configured with beyond the usual variables: keys read from the variable an
# `api_key_env:` names, header values we send. Every error text is scrubbed of them too.
_REGISTERED: set[str] = set()
_REGISTERED_ENV: set[str] = set()


def register_secret(value: str | None, env_name: str | None = None) -> None:
    """Remember `value` (a key, a token, a header value) so `scrub` masks it wherever it appears."""
    if env_name:
        _REGISTERED_ENV.add(env_name)
    if value and len(value) >= 6:
        _REGISTERED.add(value)


def secret_env_names() -> tuple[str, ...]:
    """The usual secret variables plus those this process was configured to read keys from."""
    return tuple(dict.fromkeys([*SECRET_ENV_VARS, *sorted(_REGISTERED_ENV)]))


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def _known_secret_values() -> list[str]:
    values = {v for v in (os.environ.get(name) for name in secret_env_names()) if v and len(v) >= 6}
    # longest first, so a secret that contains another is masked whole
    return sorted(values | _REGISTERED, key=len, reverse=True)


def redact(obj: Any) -> Any:
    """A copy of a config-like object with secret-named keys and known secret values masked."""
    secrets = _known_secret_values()

    def walk(value: Any, key: str = "") -> Any:
        if key and is_secret_key(key) and value not in (None, ""):
            return REDACTED
        if isinstance(value, dict):
            return {k: walk(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return scrub(value, secrets)
        return value

    return walk(obj)


def scrub(text: str, secrets: list[str] | None = None) -> str:
    """Mask any known secret value (from the environment) that appears inside a string."""
    for s in _known_secret_values() if secrets is None else secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text
