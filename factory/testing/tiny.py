"""Tiny tokenizers and models, built in-process, for tests: ours and those of users' plugins.

Nothing here touches the network. `build_tiny_tokenizer` trains a byte-level BPE (vocab ~400) on built-in
text in well under a second; `build_tiny_llama` saves a 2-layer, 64-wide `LlamaForCausalLM` with that
tokenizer to a folder that loads through the same `from_pretrained` path a Hub id takes. The model's weights
are random (seeded), so its text is gibberish, but it is deterministic and exercises tokenization, chat
templates, batching, padding, generation and training exactly like a real checkpoint.

    from factory.testing.tiny import build_tiny_llama
    path = build_tiny_llama(tmp_path / "tiny")      # then: HFGenerator(path), TRL trainers, ...
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from factory.records import CHATML

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

BOS = "<|endoftext|>"
EOS = "<|im_end|>"
PAD = "<|pad|>"
IM_START = "<|im_start|>"
SPECIAL_TOKENS = [PAD, BOS, IM_START, EOS]  # ids 0..3, in this order

# ChatML with {% generation %} tags around assistant turns (TRL's assistant-only loss needs them): the same
# template `factory train` gives base models that have none.
CHAT_TEMPLATE = CHATML

_SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "our model", "the river", "a small bird", "the city"]
_VERBS = ["sees", "likes", "writes", "reads", "answers", "follows", "builds", "finds"]
_OBJECTS = ["a question", "the answer", "some data", "a long story", "the map", "a short poem", "the code",
            "an apple"]
_QUESTIONS = ["What is the capital of France?", "Write a haiku about rain.", "Explain how a list works.",
              "Summarize the story in one sentence.", "Translate hello into Spanish.", "Why is the sky blue?"]
_ANSWERS = ["Paris is the capital of France.", "Rain falls soft on leaves.", "A list holds items in order.",
            "A dog finds the map and goes home.", "Hola means hello.", "Air scatters blue light the most."]


def corpus() -> list[str]:
    """A few hundred lines of plain English, numbers and code-ish text: enough to learn ~150 BPE merges."""
    lines = [f"{s.capitalize()} {v} {o}." for s in _SUBJECTS for v in _VERBS for o in _OBJECTS[:4]]
    lines += [f"What is {a} plus {b}? {a} plus {b} is {a + b}." for a in range(10) for b in range(0, 10, 3)]
    lines += [f"Question: {q}\nAnswer: {a}" for q, a in zip(_QUESTIONS, _ANSWERS, strict=True)]
    lines += [f"def f{i}(x):\n    return x * {i} + {i * i}" for i in range(20)]
    return lines


def build_tiny_tokenizer(save_dir: str | Path | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (vocab ~400) with ChatML special tokens and chat template.

    Any text round-trips (byte-level), so tests can feed it arbitrary prompts. Special tokens: pad
    `<|pad|>` (0), bos `<|endoftext|>` (1), `<|im_start|>` (2), eos `<|im_end|>` (3); no bos is added when
    encoding, as with ChatML models.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START],
        model_max_length=512,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    if save_dir is not None:
        tok.save_pretrained(str(save_dir))
    return tok


def build_tiny_llama(out_dir: str | Path, num_layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised (seeded) tiny Llama plus the tiny tokenizer to `out_dir`; return it.

    Same `seed` and `num_layers` → the same weights, so generated texts are stable across runs.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tok = build_tiny_tokenizer()
    config = LlamaConfig(
        hidden_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        vocab_size=len(tok),
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    return out
