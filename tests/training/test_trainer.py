"""End-to-end GEM training on a tiny local model: stages, checkpoints, resume, DDP, exports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, TrainingArguments

from gemlm.model import GEMModel
from gemlm.training.config import GEMTrainingConfig
from gemlm.training.run import train
from gemlm.training.trainer import GEMTrainer, apply_lora

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = [
    "The cat sat on the mat while the dog slept on the rug.",
    "Paris is the capital of France and Berlin is the capital of Germany.",
    "Stocks fell sharply today while bonds rose in early trading.",
    "The weather is sunny with a chance of rain tomorrow afternoon.",
    "A quick brown fox jumps over the lazy dog in the green field.",
    "Language models can embed text and generate text with one set of weights.",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.txt"
    lines = [f"{a} {b}" for a in SENTENCES for b in SENTENCES] * 3
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_config(tiny_dir: Path, corpus: Path, out: Path, **over) -> GEMTrainingConfig:
    base = dict(
        model=str(tiny_dir),
        output_dir=str(out),
        train_data=str(corpus),
        eval_rows=4,
        ntp_steps=3,
        ntp_batch_size=4,
        ntp_seq_len=40,
        gem_prob=0.5,
        min_prefix=4,
        min_suffix=4,
        contrastive_steps=3,
        contrastive_batch_size=4,
        contrastive_max_len=24,
        contrastive_alpha=0.5,
        save_steps=2,
        logging_steps=1,
        quick_eval=False,
        bf16=False,
        max_length=16,
    )
    base.update(over)
    return GEMTrainingConfig(**base)


def test_two_stages_save_gemlm_and_sentence_transformers(tiny_dir, corpus, tmp_path) -> None:
    cfg = tiny_config(
        tiny_dir, corpus, tmp_path / "run", prompt="query: ", readout_suffix=" means:"
    )
    summary = train(cfg)
    out = tmp_path / "run"
    for name in (
        "model/gemlm_config.json",
        "sentence-transformers/modules.json",
        "log.csv",
        "loss.png",
        "stage1-ntp/final.safetensors",
        "stage2-contrastive/final.safetensors",
    ):
        assert (out / name).exists(), name
    header = (out / "log.csv").read_text().splitlines()[0].split(",")
    assert {"ntp", "contrastive", "accuracy", "logit_scale", "stage"} <= set(header)

    gem = GEMModel.from_pretrained(summary["model"], dtype="float32")
    assert gem.config.prompts["query"] == "query: " and gem.config.default_prompt_name == "document"
    assert gem.config.readout_suffix == " means:"
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(out / "sentence-transformers"), device="cpu")
    texts = ["the cat sat", "paris is the capital of france " * 10, ""]  # one is truncated
    np.testing.assert_allclose(st.encode(texts), gem.encode(texts), atol=1e-5)


def test_lora_trains_only_the_special_rows_of_the_embeddings(
    tiny_llama_dir, corpus, tmp_path
) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir).get_input_embeddings().weight
    train(tiny_config(tiny_llama_dir, corpus, tmp_path / "run", ntp_lr=1e-2, contrastive_lr=1e-2))
    gem = GEMModel.from_pretrained(tmp_path / "run/model", dtype="float32")
    emb = gem.model.get_input_embeddings().weight
    n = base.shape[0]
    assert torch.equal(emb[:n], base)  # ordinary rows untouched
    assert not torch.allclose(emb[n], base.mean(0), atol=1e-4)  # the special row learned


def test_apply_lora_trainable_parameters(tiny_dir) -> None:
    gem = GEMModel.from_pretrained(tiny_dir, dtype="float32")
    lm = apply_lora(gem.model, gem.special_ids, r=4, alpha=8, dropout=0.0)
    names = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "token_adapter" in n for n in names)
    assert any("q_proj" in n for n in names) and any("down_proj" in n for n in names)


def test_full_tuning_runs(tiny_llama_dir, corpus, tmp_path) -> None:
    summary = train(
        tiny_config(
            tiny_llama_dir,
            corpus,
            tmp_path / "run",
            tuning="full",
            gradient_checkpointing=True,
            ntp_steps=2,
            contrastive_steps=2,
        )
    )
    assert Path(summary["model"]).is_dir()


def test_existing_checkpoints_need_resume(tiny_llama_dir, corpus, tmp_path) -> None:
    cfg = tiny_config(tiny_llama_dir, corpus, tmp_path / "run", contrastive_steps=0, ntp_steps=2)
    train(cfg)
    (tmp_path / "run/stage1-ntp/final.safetensors").unlink()
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg)


def test_nan_loss_stops_naming_the_step_and_keeps_the_checkpoint(tmp_path) -> None:
    class Exploding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            bad = float("nan") if self.calls == 3 else 0.0
            return {"loss": (self.w * x).sum() + bad}

        def trainable_state(self):
            return {"w": self.w.detach().clone()}

    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=5,
        save_steps=2,
        use_cpu=True,
        per_device_train_batch_size=1,
        report_to=[],
        logging_steps=1,
    )
    data = [{"x": torch.ones(1)} for _ in range(8)]
    trainer = GEMTrainer(
        model=Exploding(),
        args=args,
        train_dataset=data,
        data_collator=lambda f: {"x": torch.stack([r["x"] for r in f])},
    )
    with pytest.raises(FloatingPointError, match="at step 3"):
        trainer.train()
    assert (tmp_path / "checkpoint-2/trainable.safetensors").is_file()


def test_bad_data_fails_before_training(tiny_llama_dir, tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="no text"):
        train(tiny_config(tiny_llama_dir, empty, tmp_path / "run"))
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"body": "some words here and there and more words"}\n')
    with pytest.raises(ValueError, match="body"):
        train(tiny_config(tiny_llama_dir, jl, tmp_path / "run2"))


def test_corrupt_checkpoint_is_a_clear_error(tiny_llama_dir, corpus, tmp_path) -> None:
    cfg = tiny_config(tiny_llama_dir, corpus, tmp_path / "run", ntp_steps=2, contrastive_steps=0)
    train(cfg)
    final = tmp_path / "run/stage1-ntp/final.safetensors"
    final.write_bytes(final.read_bytes()[:100])
    with pytest.raises(RuntimeError, match="cannot read checkpoint"):
        train(cfg, resume=True)


def _cli(cfg_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gemlm.cli", "train", "--config", str(cfg_path), *extra]


def _write(cfg: GEMTrainingConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    return path


def test_sigkill_then_resume_finishes_the_same_steps(tiny_llama_dir, corpus, tmp_path) -> None:
    steps = 30
    cfg = tiny_config(
        tiny_llama_dir,
        corpus,
        tmp_path / "run",
        ntp_steps=0,
        contrastive_steps=steps,
        save_steps=2,
        logging_steps=1,
    )
    path = _write(cfg, tmp_path / "cfg.yaml")
    stage = tmp_path / "run/stage2-contrastive"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        _cli(path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (stage / "checkpoint-4").is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (stage / "final.safetensors").exists(), "training finished before it was killed"
    done = subprocess.run(
        _cli(path, "--resume"), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert not re.search(r"[^0-9]1/30 \[", done.stderr), "restarted from step 1 instead of resuming"
    state = json.loads((stage / f"checkpoint-{steps}/trainer_state.json").read_text())
    assert state["global_step"] == steps
    assert (tmp_path / "run/model/gemlm_config.json").is_file()


def test_cli_rejects_bad_configs(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ntp_steps: 3\nnot_a_key: 1\n")
    r = subprocess.run(
        _cli(bad), capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert r.returncode == 2 and "not_a_key" in r.stdout


def test_two_process_ddp_on_cpu(tiny_llama_dir, corpus, tmp_path) -> None:
    cfg = tiny_config(tiny_llama_dir, corpus, tmp_path / "run", ntp_steps=2, contrastive_steps=2)
    path = _write(cfg, tmp_path / "cfg.yaml")
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [
        str(accelerate),
        "launch",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--cpu",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29533",
        "-m",
        "gemlm.cli",
        "train",
        "--config",
        str(path),
    ]
    r = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    state = json.loads(
        next(
            (tmp_path / "run/stage2-contrastive").glob("checkpoint-2/trainer_state.json")
        ).read_text()
    )
    assert state["global_step"] == 2
    assert (tmp_path / "run/model/gemlm_config.json").is_file()


def test_contrastive_rows_are_tokenized_like_encode(tiny_dir) -> None:
    import datasets

    from gemlm.training.data import tokenize_texts

    gem = GEMModel.from_pretrained(tiny_dir, dtype="float32")
    ds = datasets.Dataset.from_dict({"text": ["the cat sat on the mat"]})
    rows = tokenize_texts(ds, gem.tokenizer, 64, prompt="query: ", add_special_tokens=True)
    ids, _ = gem.tokenize_for_embedding(["query: the cat sat on the mat"])
    assert rows["input_ids"][0] == ids[0][:-1]


def wiki_folder(tmp_path: Path, n_docs: int = 12) -> Path:
    """A WikiExtractor folder of ``n_docs`` titled two-paragraph articles."""
    wiki = tmp_path / "wiki" / "AA"
    wiki.mkdir(parents=True)
    docs = []
    for d in range(n_docs):
        body = [
            " ".join(SENTENCES[(d + p + s) % len(SENTENCES)] for s in range(3)) for p in range(2)
        ]
        docs.append(f'<doc id="{d}" url="?curid={d}" title="Title {d}">\nTitle {d}\n\n')
        docs.append("\n".join(body) + "\n</doc>\n")
    (wiki / "wiki_00").write_text("".join(docs))
    return wiki.parent


def test_pairs_from_documents_query_prompt_and_matryoshka(tiny_llama_dir, tmp_path) -> None:
    cfg = tiny_config(
        tiny_llama_dir,
        wiki_folder(tmp_path),
        tmp_path / "run",
        ntp_steps=0,
        tuning="lora",
        adapter_scope="special_only",
        contrastive_alpha=1.0,
        pair_mix={"ict": 1.0, "crop": 1.0, "title": 1.0},
        positive_max_len=40,
        prompt="passage: ",
        query_prompt="question: ",
        matryoshka_dims=[8, 16],
        max_length=64,
    )
    train(cfg)
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert any("contrastive_8" in row and "contrastive_16" in row for row in log)
    gem = GEMModel.from_pretrained(tmp_path / "run" / "model", dtype="float32")
    assert gem.config.prompts == {"query": "question: ", "document": "passage: "}
    q = gem.encode_query("the cat sat on the mat")
    assert np.allclose(q, gem.encode("question: the cat sat on the mat", prompt=""), atol=1e-6)


def test_training_with_a_teacher_logs_the_distill_term(
    tiny_llama_dir, corpus, tmp_path, monkeypatch
):
    from gemlm.training import distill

    from .test_distill import FakeTeacher

    monkeypatch.setattr(distill, "load_teacher", lambda name: FakeTeacher())
    cfg = tiny_config(
        tiny_llama_dir,
        corpus,
        tmp_path / "run",
        ntp_steps=0,
        contrastive_steps=2,
        distill_teacher="stand-in",
        distill_weight=0.5,
    )
    train(cfg)
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert any("distill" in row for row in log)


def test_grad_cache_trains_the_same_weights_through_the_trainer(
    tiny_llama_dir, corpus, tmp_path
) -> None:
    """Two contrastive steps with gradient accumulation: the cache gives the plain weights."""
    weights = []
    for cache in (False, True):
        cfg = tiny_config(
            tiny_llama_dir,
            corpus,
            tmp_path / f"run-{cache}",
            ntp_steps=0,
            contrastive_steps=2,
            contrastive_alpha=1.0,
            contrastive_micro_batch=3,
            gradient_accumulation_steps=2,
            contrastive_lr=1e-3,  # steps of ~1e-3: a skipped replay would leave LoRA unchanged
            grad_cache=cache,
        )
        train(cfg)
        weights.append(
            load_file(str(tmp_path / f"run-{cache}/stage2-contrastive/final.safetensors"))
        )
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, rtol=0, atol=1e-4, msg=name)
