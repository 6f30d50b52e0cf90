"""`factory prune --model SPEC --blocks N --calib REF --out DIR`: remove the least useful span of decoder blocks."""

from __future__ import annotations

from pathlib import Path

import click

from factory.cli._flags import ROWS
from factory.cli.main import App

pass_app = click.make_pass_decorator(App)


@click.command()
@click.option("--model", "-m", "model_spec", required=True, metavar="SPEC",
              help="A model directory, a Hub id, hf:PATH, or local (the embedded SmolLM2-135M-Instruct).")
@click.option("--blocks", required=True, type=int, help="How many contiguous decoder blocks to remove.")
@click.option("--calib", required=True, metavar="REF",
              help="Calibration texts: a dataset version (NAME, NAME@VERSION), a JSONL/Parquet file, or seeds:NAME; "
                   "rows with messages or text/instruction/response columns.")
@click.option("--n-calib", type=ROWS, default=256, show_default=True,
              help="Use the first N calibration rows.")
@click.option("--max-length", type=click.IntRange(min=8), default=512, show_default=True,
              help="Tokens per calibration text.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the pruned checkpoint and its report.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out.")
@pass_app
def prune(app: App, model_spec: str, blocks: int, calib: str, n_calib: int, max_length: int, out: Path,
          overwrite: bool) -> None:
    """Prune the span of --blocks decoder blocks whose input and output hidden states are closest.

    Block importance is the angular distance between the hidden state entering a span and the one leaving
    it, averaged over the calibration tokens (Gromov et al. 2024); the span with the smallest distance is
    removed. Writes a loadable checkpoint with factory.json lineage, prune-report.md (the distance of every
    span, parameters and FLOPs per token before/after) and prune-distances.png.

    \b
    Examples:
      factory prune --model local --blocks 6 --calib seeds:math_sft --out ckpt/smol-24
      factory prune --model ckpt/sft --blocks 4 --calib chat --n-calib 128 --out ckpt/pruned
    """
    from factory.cli._fmt import table
    from factory.cli._models import model_source, read_rows
    from factory.errors import BadInput
    from factory.trainers import prune as P
    from factory.trainers.prune_run import PruneConfig, distance_table, run_prune

    if blocks <= 0:
        raise BadInput(f"--blocks must be a positive number of blocks, got {blocks}")
    source = model_source(model_spec, app.home)
    P.check_blocks(blocks, P.model_shape(source).blocks)
    rows, calibration = read_rows(app.store, calib, n_calib)
    cfg = PruneConfig(blocks=blocks, n_calib=n_calib, max_length=max_length)
    doc = run_prune(model_spec, source, cfg, rows, calibration, out, overwrite=overwrite)
    s = doc["prune"]
    lo, hi = s["removed"]
    headers, trows = distance_table(s["distances"], lo, blocks)
    click.echo(table(headers, trows), err=True)
    click.echo(f"removed blocks {lo}-{hi}: {s['before']['blocks']} -> {s['after']['blocks']} blocks, "
               f"{s['before']['parameters']:,} -> {s['after']['parameters']:,} parameters, "
               f"{s['flops_saved']:.1%} fewer FLOPs per token at {s['flops_context']} context", err=True)
    click.echo(str(out.expanduser().absolute()))
