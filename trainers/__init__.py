"""Thin trainer adapters over TRL and PEFT: our configs and dataset versions in, checkpoints with lineage out."""
