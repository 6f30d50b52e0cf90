"""Bad input to `factory train`: one line, exit != 0, and nothing written or overwritten."""

from __future__ import annotations

import pytest
import torch

from tests.test_train_sft import (
    FAST,
    chat_rows,
    import_rows,
    invoke,
    one_thread,  # noqa: F401  (autouse fixture)
    preference_rows,
)


@pytest.fixture
def setup(tmp_path, tiny_dir):
    home = tmp_path / "home"
    import_rows(home, tmp_path, "chat", chat_rows(4))
    import_rows(home, tmp_path, "prefs", preference_rows(4))
    assert invoke(home, "datasets", "import", "seeds:hh", "--name", "hh").exit_code == 0
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((tiny_dir / name).read_bytes())
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("precious")
    return home, tmp_path


CASES = [
    # (method, model, data, out, extra --set, exit code, what the one line says)
    ("sft", "TINY", "hh", "new", [], 2,
     ["dataset hh@", "lacks column messages (has: id, chosen, rejected)", "factory datasets convert hh-rlhf"]),
    ("dpo", "TINY", "hh", "new", [], 2,
     ["lacks column prompt", "convert them with `factory datasets convert hh-rlhf"]),
    ("dpo", "TINY", "chat", "new", [], 2, ["lacks columns prompt, chosen, rejected", "factory train sft"]),
    ("sft", "TMP/missing-model", "chat", "new", [], 2, ["model path", "missing-model does not exist"]),
    ("sft", "TMP/no-tokenizer", "chat", "new", [], 2, ["has no tokenizer"]),
    ("sft", "TINY", "chat", "full", [], 2, ["is not empty; pass --overwrite"]),
    ("sft", "TINY", "chat", "new", ["bogus=1"], 2, ["config: unknown key 'bogus'"]),
    ("dpo", "TINY", "prefs", "new", ["training.bta=0.1"], 2, ["unknown key 'training.bta'", "did you mean 'beta'"]),
    ("sft", "TINY", "nope", "new", [], 2, ["unknown dataset 'nope'"]),
]


@pytest.mark.parametrize("method, model, data, out, sets, code, messages", CASES)
def test_bad_input_is_one_line_and_writes_nothing(setup, tiny_dir, method, model, data, out, sets, code, messages):
    home, tmp = setup
    model = str(tiny_dir) if model == "TINY" else model.replace("TMP", str(tmp))
    before = sorted(p.name for p in tmp.iterdir())
    args = ["train", method, "--model", model, "--data", data, "--out", str(tmp / out), *FAST]
    r = invoke(home, *args, *[x for s in sets for x in ("--set", s)])
    assert r.exit_code == code, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    for message in messages:
        assert message in lines[0]
    assert sorted(p.name for p in tmp.iterdir()) == before  # no out dir, no partial run
    assert (tmp / "full" / "keep.txt").read_text() == "precious"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on machines without CUDA")
def test_qlora_without_cuda_is_refused_before_anything_is_written(setup, tiny_dir):
    home, tmp = setup
    r = invoke(home, "train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(tmp / "full"),
               "--overwrite", "--set", "tuning=qlora")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "QLoRA (4-bit bitsandbytes) needs a CUDA GPU" in r.stderr and "qlora_fallback=lora" in r.stderr
    assert sorted(p.name for p in (tmp / "full").iterdir()) == ["keep.txt"]


def test_a_failed_run_leaves_out_alone_and_no_partial_run(setup, tiny_dir):
    """Errors found only once the model is loaded (a bad TRL value) still leave --out as it was."""
    home, tmp = setup
    r = invoke(home, "train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(tmp / "full"),
               "--overwrite", *FAST, "--set", "training.lr_scheduler_type=sideways")
    assert r.exit_code == 2 and "sideways is not a valid SchedulerType" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: config: training:")
    assert sorted(p.name for p in (tmp / "full").iterdir()) == ["keep.txt"]
    assert not (tmp / "full.partial").exists()


def test_overwrite_replaces_only_after_training(setup, tiny_dir):
    home, tmp = setup
    r = invoke(home, "-q", "train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(tmp / "full"),
               "--overwrite", *FAST)
    assert r.exit_code == 0, r.output
    assert not (tmp / "full" / "keep.txt").exists() and (tmp / "full" / "factory.json").is_file()
    again = invoke(home, "train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(tmp / "full"), *FAST)
    assert again.exit_code == 2 and "is not empty" in again.stderr
    nothing = invoke(home, "train", "sft", "--model", str(tiny_dir), "--data", "chat", "--out", str(tmp / "full"),
                     "--resume")
    assert nothing.exit_code == 2 and "nothing to resume" in nothing.stderr and "finished checkpoint" in nothing.stderr
