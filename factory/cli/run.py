"""`factory run RECIPE`: run a recipe of chained, resumable stages (a paper's pipeline in one command)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from factory.cli._flags import FiniteFloat
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command()
@click.argument("recipe")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a recipe variable (teacher=openai:gpt-4o) or a stage's key (lamini.n=100); repeatable.")
@click.option("--from", "start", metavar="STAGE", help="Start at this stage (the ones before it must be done).")
@click.option("--until", metavar="STAGE", help="Stop after this stage.")
@click.option("--budget", type=FiniteFloat(min=0, min_open=True), metavar="USD",
              help="Cap on dollars for the whole run: each LLM stage gets what is left.")
@click.option("--batch", is_flag=True,
              help="Send every LLM stage whose models have a batch API (openai:, anthropic:) through it: half the "
                   "price; the same outputs, so stages done online are not redone.")
@click.option("--dry-run", is_flag=True, help="Validate; print the plan and each LLM stage's cost ceiling.")
@pass_app
def run(app: App, recipe: str, sets: tuple[str, ...], start: str | None, until: str | None, budget: float | None,
        batch: bool, dry_run: bool) -> None:
    """Run RECIPE (a YAML file, or the name of a shipped one: quickstart, openbezoar, spin, self-distill).

    Each stage is one factory command; its output is content-addressed, so a rerun skips the stages that
    are done and resumes the one that was interrupted. Ends with a summary table; `run.json` beside the
    run's state ($FACTORY_HOME/runs/NAME/) holds the same, machine-readable.

    \b
    Examples:
      factory run quickstart
      factory run recipes/openbezoar.yaml --dry-run
      factory run recipes/openbezoar.yaml --set teacher=openai:gpt-4o-mini --budget 20
      factory run recipes/openbezoar.yaml --set teacher=openai:gpt-4o-mini --batch
      factory run recipes/spin.yaml --until iter0 --set sft.n=200
    """
    from factory.cli.main import cli
    from factory.recipes.runner import Runner
    from factory.recipes.spec import load_recipe

    path = recipe_path(recipe)
    spec = load_recipe(path, sets)
    runner = Runner(cli, app.store.home, spec, budget=budget, batch=batch)
    runner.check()  # every stage's command line parses, before anything runs or is printed
    runner.span(start, until)
    if dry_run:
        from factory.recipes.report import dry_run_plan

        click.echo(dry_run_plan(runner))
        return
    click.echo(f"recipe {spec.name} ({path}): {len(spec.stages)} stages; state in {runner.dir}", err=True)
    outcomes = runner.run(start=start, until=until)
    from factory.recipes.report import summary

    click.echo(summary(outcomes))
    click.echo(f"run.json: {runner.dir / 'run.json'}", err=True)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        from factory.errors import FactoryError

        raise FactoryError(f"stage {failed[0].name!r} failed: {failed[0].error}")


def recipe_path(recipe: str) -> Path:
    """A recipe file, or a shipped recipe's name (quickstart -> recipes/quickstart.yaml in the package)."""
    from factory.errors import BadInput

    path = Path(recipe)
    if path.is_file():
        return path
    shipped = shipped_recipes()
    name = recipe.removesuffix(".yaml")
    if name in shipped:
        return shipped[name]
    known = ", ".join(sorted(shipped)) or "none"
    raise BadInput(f"no recipe file {recipe!r} (shipped recipes: {known})")


def shipped_recipes() -> dict[str, Any]:
    from importlib.resources import files

    try:
        root = files("factory.recipes.shipped")
    except ModuleNotFoundError:
        return {}
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".yaml")}
