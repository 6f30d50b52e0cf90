"""Publishing checkpoints made by `factory train` (a tiny Llama with a real PEFT LoRA adapter and a factory.json
written per the trainer contract), model cards, collections and `factory zoo list`, against the loopback Hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, snapshot_download

from tests.helpers import run_factory
from tests.test_publish_dataset import TOKEN, build_store

SCORES = {"mt-bench": {"score": 4.25, "turn_1": 4.5}, "arc_easy": {"acc": 0.375, "note": "tiny"}}


def build_lora_checkpoint(tiny_dir: Path, out: Path, datasets: list[dict], scores: dict | None = None,
                          base_model: str | None = None) -> Path:
    """What `factory train sft --lora` leaves behind: adapter, tokenizer, generation config, factory.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():  # a trained adapter, not LoRA's zero init: loading it must change the model
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    shutil.copy(tiny_dir / "generation_config.json", out / "generation_config.json")
    (out / "training_args.json").write_text(json.dumps({"learning_rate": 2e-4, "num_train_epochs": 1,
                                                        "hub_token": "<HUB_TOKEN>"}))
    (out / "optimizer.pt").write_bytes(b"optimizer state: never published")
    (out / "checkpoint-10").mkdir()
    (out / "checkpoint-10" / "adapter_model.safetensors").write_bytes(b"intermediate")
    (out / "factory.json").write_text(json.dumps({
        "kind": "checkpoint", "method": "sft", "base_model": base_model or str(tiny_dir), "adapter": True,
        "datasets": datasets, "config": {"lr": 2e-4, "epochs": 1, "lora": {"r": 4, "alpha": 8},
                                         "openai_api_key": "sk-not-for-cards"},
        "config_hash": "0123456789abcdef0123", "metrics": {"train_loss": 2.5},
        "versions": {"factory": "0.1.0", "trl": "1.16", "peft": "0.21"}, "stages": ["sft"],
        "created": "2026-01-01T00:00:00Z", "eval": scores or {},
    }))
    return out


@pytest.fixture(scope="module")
def zoo_home(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path):
    root = tmp_path_factory.mktemp("zoo")
    home = root / ".factory"
    refs = build_store(home)
    name, version = refs["clean"].split("@")
    ckpt = build_lora_checkpoint(tiny_dir, root / "ckpt-sft", [{"name": name, "version": version}], SCORES)
    return home, refs, ckpt


@pytest.mark.slow
def test_lora_checkpoint_round_trip_and_collection(hub_server, zoo_home, tiny_dir: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    home, refs, ckpt = zoo_home
    api = HfApi(token=TOKEN)
    data_repo, model_repo = "testuser/zoo-evol", "testuser/zoo-tiny-sft"
    for target, repo in ((refs["clean"], data_repo), (str(ckpt), model_repo)):
        result = run_factory("publish", target, "--repo", repo, "--collection", "Publish Test Zoo", home=home,
                             env={"HF_TOKEN": TOKEN})
        assert result.returncode == 0, result.stderr
        assert "in collection testuser/publish-test-zoo-" in result.stderr

    files = api.list_repo_files(model_repo)
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "generation_config.json",
            "factory.json", "training_args.json", "README.md"} <= set(files)
    assert "optimizer.pt" not in files and not any(f.startswith("checkpoint-") for f in files)
    assert "0123456789ab" in {t.name for t in api.list_repo_refs(model_repo).tags}

    path = Path(snapshot_download(model_repo, token=TOKEN))
    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    model = PeftModel.from_pretrained(base, path).eval()
    saved = load_file(ckpt / "adapter_model.safetensors")
    loaded = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert len(loaded) == len([k for k in saved if "lora_B" in k]) > 0
    assert all(p.abs().sum() > 0 for p in loaded.values())
    tok = AutoTokenizer.from_pretrained(path)
    inputs = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        with model.disable_adapter():
            plain = base(**inputs).logits
        tuned = model(**inputs).logits
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert not torch.allclose(plain, tuned)  # the downloaded adapter is active

    collection = next(c for c in api.list_collections(owner="testuser") if c.title == "Publish Test Zoo")
    items = {i.item_id: i for i in api.get_collection(collection.slug).items}
    assert set(items) == {data_repo, model_repo}
    assert items[data_repo].item_type == "dataset" and refs["clean"] in items[data_repo].note
    assert items[model_repo].item_type == "model"
    assert "mt-bench score=4.25" in items[model_repo].note and "arc_easy acc=0.375" in items[model_repo].note

    listed = run_factory("zoo", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(data_repo in line and refs["clean_version"] in line and "Publish Test Zoo" in line for line in lines)
    assert any(model_repo in line and "mt-bench score=4.25" in line for line in lines)
    shelf = run_factory("zoo", "list", "--collection", collection.slug, "--json", home=home, env={"HF_TOKEN": TOKEN})
    assert shelf.returncode == 0, shelf.stderr
    shown = {i["repo"]: i for i in json.loads(shelf.stdout)["items"]}
    assert shown[data_repo]["version"] == refs["clean_version"] and refs["seed"] in shown[data_repo]["lineage"]
    assert shown[model_repo]["eval"] == SCORES and "sft of" in shown[model_repo]["lineage"]
    by_title = run_factory("zoo", "list", "--collection", "Publish Test Zoo", home=home, env={"HF_TOKEN": TOKEN})
    assert by_title.returncode == 0 and collection.slug in by_title.stdout


def test_model_card_metadata(hub_server, zoo_home, tmp_path: Path, tiny_dir: Path) -> None:
    """A checkpoint whose base is a Hub id, trained on a published dataset: base_model, datasets, model-index."""
    from click.testing import CliRunner

    from factory.cards.render import check_card
    from factory.cli.main import cli

    home, refs, _ = zoo_home
    name, version = refs["clean"].split("@")
    ckpt = build_lora_checkpoint(tiny_dir, tmp_path / "ckpt", [{"name": name, "version": version},
                                                               {"name": "gone", "version": "abcdef123456"}],
                                 SCORES, base_model="HuggingFaceTB/SmolLM2-135M-Instruct")
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "publish", refs["clean"], "--repo", "testorg/card-data",
                               "--token", TOKEN]).exit_code == 0
    result = runner.invoke(cli, ["--home", str(home), "publish", str(ckpt), "--repo", "testorg/card-model",
                                 "--token", TOKEN, "--language", "en", "--language", "fr"])
    assert result.exit_code == 0, result.output

    card = ModelCard.load("testorg/card-model", token=TOKEN)
    card.validate()
    check_card(card)
    data = card.data
    assert data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct" and data.datasets == ["testorg/card-data"]
    assert data.library_name == "peft" and data.pipeline_tag == "text-generation" and data.license == "apache-2.0"
    assert data.language == ["en", "fr"] and {"factory", "sft", "lora", "peft"} <= set(data.tags)
    results = {(r.dataset_type, r.metric_type): r.metric_value for r in data.eval_results}
    assert results == {("mt-bench", "score"): 4.25, ("mt-bench", "turn_1"): 4.5, ("arc_easy", "acc"): 0.375}
    assert data.model_name == "card-model"

    text = card.text
    for expected in ("**sft**", "LoRA adapter", "`lora.r`", "| `lr` | `0.0002` |", "train_loss", refs["seed"],
                     "judge **gpt4-rubric**", "`gone@abcdef123456`", "not in the local store",
                     "AutoPeftModelForCausalLM", "hu2021lora", "dissanayake2024openbezoar", "mt-bench | score | 4.25"):
        assert expected in text, expected
    assert "sk-not-for-cards" not in text
    folder = Path(snapshot_download("testorg/card-model", token=TOKEN))
    pushed = json.loads((folder / "factory.json").read_text())
    assert pushed["config"]["openai_api_key"] == "***" and pushed["eval"] == SCORES


def test_full_weights_checkpoint_round_trip(hub_server, tmp_path: Path, tiny_dir: Path) -> None:
    """A merged sequential-SFT checkpoint loads with `from_pretrained(repo)` and has the same weights; its
    stage checkpoints (subfolders with their own factory.json) are not part of the push."""
    import torch
    from click.testing import CliRunner
    from transformers import AutoModelForCausalLM

    from factory.cli.main import cli

    ckpt = Path(shutil.copytree(tiny_dir, tmp_path / "merged"))
    stage = Path(shutil.copytree(tiny_dir, ckpt / "stage-1-evol"))
    (stage / "factory.json").write_text(json.dumps({"kind": "checkpoint", "method": "sft-sequential"}))
    stages = [{"stage": 1, "dataset": {"name": "evol", "version": "abc123abc123"}, "subdir": stage.name,
               "adapter": False, "metrics": {"train_loss": 1.23456}},
              {"stage": 2, "dataset": {"name": "orca", "version": "def456def456"}, "subdir": "stage-2-orca",
               "adapter": False, "metrics": {}}]
    (ckpt / "factory.json").write_text(json.dumps({
        "kind": "checkpoint", "method": "sft-sequential", "base_model": "org/base", "adapter": False,
        "datasets": [], "config": {"lr": 1e-5}, "config_hash": "feedfacecafebeef", "metrics": {}, "eval": {},
        "stages": stages}))
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / ".factory"), "publish", str(ckpt), "--repo",
                                      "testuser/tiny-seq", "--token", TOKEN])
    assert result.exit_code == 0, result.output
    card = ModelCard.load("testuser/tiny-seq", token=TOKEN)
    assert card.data.library_name == "transformers" and card.data.base_model == "org/base"
    assert "stage 1 on `evol@abc123abc123` (train_loss 1.235) → stage 2 on `orca@def456def456`" in card.text
    assert "No `factory eval` results" in card.text and card.data.eval_results is None
    assert not [f for f in HfApi(token=TOKEN).list_repo_files("testuser/tiny-seq") if f.startswith("stage-")]

    pushed = AutoModelForCausalLM.from_pretrained(snapshot_download("testuser/tiny-seq", token=TOKEN))
    local = AutoModelForCausalLM.from_pretrained(tiny_dir)
    for (name, a), (_, b) in zip(pushed.state_dict().items(), local.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_citations_follow_the_methods_used() -> None:
    """Each trainer method, tuning mode and stage declares its paper (nothing is guessed from names); a card cites
    OpenBezoar, then those, each once."""
    from factory.cli.publish import _paper
    from factory.papers import DPO, LORA, OPENBEZOAR, QLORA, SELF_DISTILL, SPIN
    from factory.publish.lineage import lookup_papers
    from factory.publish.papers import citations_for
    from factory.records import Paper

    def declared(kind: str, name: str) -> list[Paper]:
        return lookup_papers(_paper, kind, name)

    assert declared("method", "sft") == [] and declared("tuning", "full") == [] and declared("method", "nope") == []
    assert declared("method", "dpo") == [DPO] and declared("method", "sft-sequential") == [OPENBEZOAR]
    assert declared("method", "spin") == [SPIN, DPO] and declared("method", "prune") == [SELF_DISTILL]
    assert declared("tuning", "lora") == [LORA] and declared("tuning", "qlora") == [QLORA, LORA]
    assert declared("scheme", "evol-instruct")[0].url == "https://arxiv.org/abs/2304.12244"
    assert declared("judge", "mt-bench-single")[0].url == "https://arxiv.org/abs/2306.05685"
    assert declared("scheme", "no-such-scheme") == []  # an unknown plugin: no paper, no error
    assert citations_for([*declared("method", "sft"), *declared("tuning", "full")]) == [OPENBEZOAR]
    assert citations_for([*declared("method", "dpo"), *declared("tuning", "lora")]) == [OPENBEZOAR, DPO, LORA]
    evol = Paper(title="WizardLM", url="https://arxiv.org/abs/2304.12244", year=2023).with_key("evol-instruct1")
    assert citations_for([evol, evol, None]) == [OPENBEZOAR, evol]
    assert "eprint = {2304.12244}" in evol.as_dict()["bibtex"] and evol.key == "evolinstruct1"
    unkeyed = citations_for([Paper(title="A paper", url="https://example.org/p")])[1]
    assert unkeyed.key and unkeyed.as_dict()["bibtex"].startswith("@misc{" + unkeyed.key + ",")
