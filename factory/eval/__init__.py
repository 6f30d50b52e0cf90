"""Model evaluation: MT-Bench answers graded by an LLM judge (`factory eval mt-bench`)."""
