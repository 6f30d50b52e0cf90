"""`factory run RECIPE`: run a recipe of chained, resumable stages."""

from factory.cli._pending import pending_command

run = pending_command(
    "run", "Run a recipe: chained stages (build, judge, train, publish) that resume where they stopped.",
    "factory run recipes/openbezoar.yaml")
