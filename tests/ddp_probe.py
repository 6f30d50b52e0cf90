"""`python tests/ddp_probe.py ARGS` = `factory ARGS`, and each process of a distributed run writes a digest of its
model's weights before and after each `Trainer.train` to `$DDP_PROBE_DIR/rank-<RANK>-<call>.json` (for
tests/test_train_distributed.py: the ranks of a DDP run must end with the same weights, changed by training).

The digest is taken around transformers' own `Trainer.train` (TRL's trainers inherit it); nothing else changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> int:
    import transformers

    train = transformers.Trainer.train
    calls = iter(range(1, 1000))

    def probed(self, *args, **kwargs):
        before = digest(self.accelerator.unwrap_model(self.model))
        out = train(self, *args, **kwargs)
        after = digest(self.accelerator.unwrap_model(self.model))
        rank = os.environ.get("RANK", "0")
        path = Path(os.environ["DDP_PROBE_DIR"]) / f"rank-{rank}-{next(calls)}.json"
        path.write_text(json.dumps({"before": before, "after": after, "world": os.environ.get("WORLD_SIZE")}))
        return out

    transformers.Trainer.train = probed
    from factory.cli.main import cli

    return cli.main(args=sys.argv[1:], prog_name="factory")


if __name__ == "__main__":
    sys.exit(main())
