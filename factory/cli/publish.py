"""`factory publish REF_OR_DIR --repo ORG/NAME`: push a dataset version or checkpoint to the Hub."""

from factory.cli._pending import pending_command

publish = pending_command(
    "publish", "Push a dataset version or a checkpoint, with its card and lineage, to the Hugging Face Hub.",
    "factory publish evol-instruct --repo you/evol-instruct")
