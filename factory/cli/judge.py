"""`factory judge REF --with LLM`: score and filter a dataset with an LLM judge."""

from factory.cli._pending import pending_command

judge = pending_command(
    "judge", "Score a dataset's rows with an LLM judge and keep those above a threshold (see `factory judges list`).",
    "factory judge evol-instruct --with gpt4 --rubric quality --min-score 7")
