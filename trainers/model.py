"""Load a base model and its tokenizer from a local directory or a Hub id, and give it a chat template.

`check_model_spec` runs before anything heavy and catches what a user can fix: a path that does not exist,
a directory that is not a transformers model, a model without a tokenizer. Loading itself is the plain
`AutoTokenizer` / `AutoModelForCausalLM.from_pretrained` path a Hub id takes, with `model_init` passed through.

Base models without a chat template get one (`chat_template: chatml` by default): ChatML with
`{% generation %}` tags, so TRL's assistant-only loss can mask the prompt. Its `<|im_start|>`/`<|im_end|>`
tokens are added when the tokenizer lacks them (and the embeddings resized), as TRL's `clone_chat_template` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory import embedded
from factory.errors import BadInput, FactoryError
from factory.records import CHATML, CHATML_TOKENS, HUB_ID

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model",
                   "vocab.txt")
# from_pretrained keywords that matter to the tokenizer as much as to the model.
SHARED_KWARGS = ("revision", "trust_remote_code", "subfolder", "gguf_file", "cache_dir")


def check_model_spec(spec: str, model_init: dict[str, Any] | None = None) -> None:
    """Fail early, in one line, on a model that cannot be loaded for reasons the user can fix."""
    if embedded.is_embedded(spec):
        return
    spec = spec[3:] if spec.startswith("hf:") else spec
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BadInput(f"model {spec}: not a directory (give a model directory or a Hub id)")
        if (model_init or {}).get("gguf_file"):
            return
        if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
            raise BadInput(f"model {spec} is a LoRA adapter; merge it first: factory train merge-adapter {spec} "
                           "--out DIR")
        if not (path / "config.json").is_file():
            raise BadInput(f"model {spec} has no config.json: not a transformers model directory")
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            raise BadInput(f"model {spec} has no tokenizer (none of {', '.join(TOKENIZER_FILES[:3])}, ...); "
                           "save one there with tokenizer.save_pretrained")
        return
    if spec.startswith((".", "/", "~")) or "\\" in spec or not HUB_ID.match(spec):
        raise BadInput(f"model path {spec} does not exist")


def tokenizer_kwargs(model_init: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in model_init.items() if k in SHARED_KWARGS}


def load_tokenizer(source: str, model_init: dict[str, Any]) -> Any:
    from transformers import AutoTokenizer

    source = embedded.load_source(source)
    try:
        tok = AutoTokenizer.from_pretrained(source, **tokenizer_kwargs(model_init))
    except (OSError, ValueError) as exc:
        raise FactoryError(f"could not load the tokenizer of {source}: {_first_line(exc)}") from None
    if tok.pad_token is None:  # batches need padding; the eos token is the usual stand-in
        tok.pad_token = tok.eos_token
    return tok


def load_model(source: str, model_init: dict[str, Any], quantization: Any = None) -> Any:
    """AutoModelForCausalLM in float32 unless `model_init.dtype` says otherwise (TRL's default too)."""
    import torch
    from transformers import AutoModelForCausalLM

    source = embedded.load_source(source)
    kwargs = dict(model_init)
    dtype = kwargs.pop("dtype", kwargs.pop("torch_dtype", None))
    if quantization is not None:
        from accelerate import PartialState

        kwargs.setdefault("device_map", {"": PartialState().local_process_index})
        dtype = dtype or quantization.bnb_4bit_compute_dtype
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype, None) or _bad_dtype(dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32,
                                                    quantization_config=quantization, **kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise FactoryError(f"could not load model {source}: {_first_line(exc)}") from None


NAMED_TEMPLATES = Path(__file__).parent / "templates"  # chat_template: NAME -> templates/NAME.jinja


def ensure_chat_template(tokenizer: Any, model: Any, setting: str) -> list[int]:
    """Give a tokenizer without a chat template the configured one; return the ids of tokens it had to add."""
    if tokenizer.chat_template:
        return []
    if setting == "none":
        return []
    if setting != "chatml":
        named = NAMED_TEMPLATES / f"{setting}.jinja"
        path = named if named.is_file() else Path(setting).expanduser()
        if not path.is_file():
            known = ", ".join(["chatml", "none", *sorted(p.stem for p in NAMED_TEMPLATES.glob("*.jinja"))])
            raise BadInput(f"config: chat_template: {setting!r} is neither a named template ({known}) nor a file")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
        return []
    from tokenizers import AddedToken

    missing = [t for t in CHATML_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
        model.resize_token_embeddings(len(tokenizer))
    tokenizer.chat_template = CHATML
    # The model must learn to end its turn with <|im_end|> and generation must stop there.
    tokenizer.eos_token = "<|im_end|>"
    eos = tokenizer.eos_token_id
    model.config.eos_token_id = eos
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.eos_token_id = eos
    return tokenizer.convert_tokens_to_ids(missing)


def _bad_dtype(name: str) -> Any:
    raise BadInput(f"config: model_init.dtype: unknown dtype {name!r} (bfloat16, float16, float32 or auto)")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
