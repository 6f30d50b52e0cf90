"""Pipeline plumbing: the stage shape and (later) chained, resumable runs of stages."""

from factory.pipeline.stage import Paper, Stage

__all__ = ["Paper", "Stage"]
