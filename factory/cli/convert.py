"""`factory datasets convert STAGE REF --name OUT`: reshape a dataset version with a non-LLM stage.

The stages are looked up in `CONVERTERS` and imported only when used, so this module stays light; each
writes a new version with the input as its lineage, like every other stage.
"""

from __future__ import annotations

import importlib

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)

# stage name -> "module:class"; each class is a factory.pipeline.stage.Stage that calls no model.
CONVERTERS = {
    "hh-rlhf": "factory.pipeline.hh_rlhf:HHRLHF",
    "hh-sft": "factory.pipeline.hh_sft:HHSFT",
    "sft": "factory.pipeline.to_sft:ToSFT",
}


@click.command("convert")
@click.argument("stage", type=click.Choice(sorted(CONVERTERS)))
@click.argument("ref")
@click.option("--name", "-n", required=True, help="Dataset name for the converted version.")
@click.option("--config", "-c", "config_file", type=click.Path(dir_okay=False), help="YAML with the stage's options.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set a stage option (e.g. format=standard).")
@pass_app
def convert(app: App, stage: str, ref: str, name: str, config_file: str | None, sets: tuple[str, ...]) -> None:
    """Convert dataset REF with STAGE into a new version of NAME.

    \b
    Stages:
      hh-rlhf   HH-RLHF chosen/rejected dialogues -> prompt/chosen/rejected (for factory train dpo);
                options: format=conversational (default) | standard
      hh-sft    HH-RLHF chosen dialogues -> messages (for factory train sft, as OpenBezoar does before DPO)
      sft       instruction/input(context)/response rows -> messages (for factory train sft);
                options: response_column=response

    \b
    Example:
      factory datasets import seeds:hh --name hh
      factory datasets convert hh-rlhf hh --name hh-dpo
      factory datasets convert sft dolly-seed --name dolly-sft
    """
    from factory.config import build_config
    from factory.store import check_name

    check_name(name)
    module_name, class_name = CONVERTERS[stage].split(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    instance = cls(build_config(cls.Config, config_file, sets))
    source = app.store.resolve(ref)
    from factory.pipeline.execute import run_stage

    result = run_stage(app.store, instance, None, source, name)
    version, created = result.version, not result.reused
    if app.verbosity >= 0:
        m = version.manifest
        what = "converted" if created else "unchanged, already stored as"
        click.echo(f"{what} {version.ref} ({m.rows} rows kept, {m.counters.get('dropped', 0)} dropped)", err=True)
    click.echo(version.ref)
