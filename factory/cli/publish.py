"""`factory publish REF_OR_DIR --repo ORG/NAME`: push a dataset version or a checkpoint, with its card, to the Hub."""

from __future__ import annotations

from pathlib import Path

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


def _paper(kind: str, name: str):
    """The paper(s) a scheme, judge, training method or tuning mode declares (the CLI may import plugins; publish/
    may not). A training method is a module of factory.trainers or factory.recipes whose `METHOD` is `name`; it
    declares `PAPERS`."""
    import importlib
    import pkgutil

    if kind == "tuning":
        from factory.trainers.config import TUNING_PAPERS

        return TUNING_PAPERS.get(name, ())
    if kind == "method":
        for package in ("factory.trainers", "factory.recipes"):
            for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
                module = importlib.import_module(f"{package}.{info.name}")
                if getattr(module, "METHOD", None) == name:
                    return getattr(module, "PAPERS", ())
        return ()
    if kind == "scheme":
        from factory.schemes import SCHEMES as registry
    elif kind == "judge":
        from factory.judges import JUDGES as registry
    else:
        return None
    return getattr(registry.get(name), "paper", None)


@click.command()
@click.argument("ref_or_dir")
@click.option("--repo", required=True, metavar="ORG/NAME", help="Target repo on the Hub (created if missing).")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--revision", default="main", show_default=True, metavar="BRANCH",
              help="Branch to commit to (created from main if missing).")
@click.option("--tag", metavar="TAG", help="An extra git tag (a dataset is always tagged with its version id).")
@click.option("--dry-run", is_flag=True, help="Show the target, files and card; touch no network.")
@click.option("--token", metavar="TOKEN", help="Hub token (default: $HF_TOKEN, then `hf auth login`'s).")
@click.option("--collection", metavar="TITLE", help="Add the repo to this Hub collection (a title or a slug).")
@click.option("--benchmarks", multiple=True, metavar="SOURCE",
              help="Benchmark prompts to check the data against (file, seeds:NAME, store ref or Hub id; repeatable).")
@click.option("--ngram", default=13, show_default=True, help="Words per n-gram for the decontamination check.")
@click.option("--max-contamination", default=0.0, show_default=True, metavar="FRACTION",
              help="Largest share of rows allowed to overlap the benchmarks.")
@click.option("--allow-contamination", is_flag=True, help="Publish even over --max-contamination (the card says so).")
@click.option("--license", "license_", default="apache-2.0", show_default=True, help="License id for the card.")
@click.option("--language", multiple=True, default=["en"], show_default=True, help="Language code (repeatable).")
@click.option("--message", "-m", help="Commit message.")
@pass_app
def publish(app: App, ref_or_dir: str, repo: str, private: bool, revision: str, tag: str | None, dry_run: bool,
            token: str | None, collection: str | None, benchmarks: tuple[str, ...], ngram: int,
            max_contamination: float, allow_contamination: bool, license_: str, language: tuple[str, ...],
            message: str | None) -> None:
    """Push a dataset version or a checkpoint directory, with a card telling how it was made, to the Hub.

    REF_OR_DIR is a dataset (NAME, NAME@VERSION, a version directory) or a checkpoint directory written by
    `factory train` (it has a factory.json). A dataset goes to a dataset repo as Parquet shards under data/,
    tagged with its version id; a checkpoint to a model repo. Publishing the same thing again makes no commit.

    \b
    Examples:
      factory publish evol-instruct --repo you/evol-instruct --benchmarks seeds:benchmark_prompts
      factory publish ckpt/sft --repo you/tiny-sft --collection "Tiny zoo"
      factory publish evol-instruct --repo you/evol --dry-run
    """
    from pydantic import ValidationError

    from factory.config import validation_message
    from factory.errors import BadInput
    from factory.publish import zoo
    from factory.publish.checkpoint import is_checkpoint, plan_checkpoint
    from factory.publish.dataset import PublishOptions, plan_dataset
    from factory.publish.decontam import DecontamConfig, DecontamReport, enforce
    from factory.publish.publisher import check_secrets, endpoint, execute

    try:
        options = PublishOptions(
            repo=repo, private=private, revision=revision, tag=tag, collection=collection, license=license_,
            language=list(language), message=message,
            decontam=DecontamConfig(benchmarks=list(benchmarks), ngram=ngram, max_fraction=max_contamination,
                                    allow=allow_contamination))
    except ValidationError as exc:
        raise BadInput(validation_message(exc, "publish options")) from None
    say = (lambda text: click.echo(text, err=True)) if app.verbosity >= 0 else (lambda text: None)
    report: DecontamReport | None = None
    if is_checkpoint(ref_or_dir):
        store = app.store
        plan = plan_checkpoint(Path(ref_or_dir), options, store, _paper, zoo.dataset_repo_lookup(store.home,
                                                                                                 endpoint()))
        if benchmarks:
            say("note: --benchmarks checks datasets; a checkpoint's data is checked when the dataset is published")
    else:
        if Path(ref_or_dir).is_dir() and not (Path(ref_or_dir) / "manifest.json").is_file():
            raise BadInput(f"{ref_or_dir} is neither a checkpoint (no factory.json) nor a dataset version "
                           "(no manifest.json)")
        plan, report = plan_dataset(app.store, ref_or_dir, options, _paper)
        say(report.summary())
    for note in plan.notes:
        say(f"note: {note}")
    if dry_run:
        click.echo(plan.describe(endpoint()))
        check_secrets(plan, app.home)
        if report is not None:
            enforce(report)
        say("dry run: nothing was sent")
        prefix = "datasets/" if plan.kind == "dataset" else ""
        click.echo(f"{endpoint()}/{prefix}{plan.repo_id}")  # last on stdout, like a real publish's URL
        return
    if report is not None:
        enforce(report)
    app.store.ensure()  # the zoo log lives in the factory home
    shown = len(plan.notes)
    outcome = execute(plan, home=app.home, token=token)
    for note in plan.notes[shown:]:
        say(f"note: {note}")
    say(outcome.message())
    click.echo(outcome.result.url)
