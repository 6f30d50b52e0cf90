"""`factory build SCHEME`: generate an instruction dataset with a generation scheme."""

from factory.cli._pending import pending_command

build = pending_command(
    "build", "Generate instruction data from seed rows with a teacher LLM and a scheme (see `factory schemes list`).",
    "factory build evol-instruct --from dolly-seed --llm gpt4 --n 1000")
