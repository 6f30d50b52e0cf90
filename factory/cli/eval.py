"""`factory eval`: evaluate a model (MT-Bench with an LLM judge, LM Eval Harness tasks)."""

from factory.cli._pending import pending_command

eval_ = pending_command(
    "eval", "Evaluate a model: MT-Bench graded by an LLM judge, or LM Eval Harness tasks.",
    "factory eval mt-bench --model ckpt/dpo --judge claude")
