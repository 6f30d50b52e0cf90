"""`factory merge slerp A B --t 0.5 --out DIR`: merge two checkpoints of one architecture."""

from __future__ import annotations

from pathlib import Path

import click

from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.group()
def merge() -> None:
    """Merge model checkpoints (SLERP)."""


@merge.command("slerp")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option("--t", "t", default="0.5", show_default=True, metavar="T[,T...]",
              help="Fraction of the way from A (0) to B (1); a comma list is a gradient over the layers "
                   "(mergekit-style: 0,0.5,1 goes from A at the first layer to B at the last).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the merged checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out.")
@pass_app
def slerp(app: App, a: str, b: str, t: str, out: Path, overwrite: bool) -> None:
    """Spherical linear interpolation of checkpoints A and B, tensor by tensor, in float32.

    A and B are checkpoint directories (or `local`) of one architecture with the same tensor shapes; the
    result is a normal checkpoint (A's config, tokenizer and dtype) whose factory.json names both parents.

    \b
    Examples:
      factory merge slerp ckpt/distill-a ckpt/distill-b --out ckpt/merged
      factory merge slerp ckpt/a ckpt/b --t 0,0.3,0.7,1 --out ckpt/merged-gradient
    """
    import shutil

    from factory.cli._models import model_source
    from factory.errors import BadInput
    from factory.trainers.outdir import OutDir
    from factory.trainers.slerp import check_compatible, merge_slerp, parse_t

    gradient = parse_t(t)
    dirs = []
    for spec in (a, b):
        path = Path(model_source(spec, app.home))
        if not path.is_dir():
            raise BadInput(f"{spec}: not a checkpoint directory (SLERP merges local checkpoints)")
        dirs.append(path)
    check_compatible(dirs[0], dirs[1])
    target = OutDir(out, overwrite=overwrite)
    target.check("slerp")
    partial = target.open("slerp")
    try:
        merge_slerp(dirs[0], dirs[1], partial, gradient, specs=(a, b))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    click.echo(str(target.commit()))
