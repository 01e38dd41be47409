"""Quick before/after checks for a training run: STS-B Spearman, Banking77 accuracy, perplexity.

Simple evaluators (the full mteb harness lives elsewhere): cosine Spearman x100 on STS-B test;
logistic regression on Banking77 train embeddings -> test accuracy x100; token-level perplexity on a
held-out Wikipedia slice.
"""

from __future__ import annotations

import csv
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from ..model import GEMModel


def sts_spearman(gem: GEMModel, data: Path, limit: int | None = None, **encode_kw) -> float:
    from scipy.stats import spearmanr

    with open(data / "stsbenchmark/stsb-en-test.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if len(r) >= 3][:limit]
    a = gem.encode([r[0] for r in rows], **encode_kw)
    b = gem.encode([r[1] for r in rows], **encode_kw)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(spearmanr(cos, [float(r[2]) for r in rows]).statistic * 100)


def banking77_accuracy(
    gem: GEMModel, data: Path, limit: int | None = None, train_rows: int = 3000, **encode_kw
) -> float:
    from sklearn.linear_model import LogisticRegression

    def read(name: str) -> list[tuple[str, str]]:
        with open(data / "banking77" / name, newline="", encoding="utf-8") as f:
            return [(r["text"], r["category"]) for r in csv.DictReader(f)]

    train = read("train.csv")
    random.Random(0).shuffle(train)
    train_rows = train_rows if limit is None else min(train_rows, 4 * limit)
    train, test = train[:train_rows], read("test.csv")[:limit]
    clf = LogisticRegression(max_iter=1000)
    clf.fit(gem.encode([t for t, _ in train], **encode_kw), [y for _, y in train])
    return float(
        (clf.predict(gem.encode([t for t, _ in test], **encode_kw)) == [y for _, y in test]).mean()
        * 100
    )


@torch.inference_mode()
def perplexity(gem: GEMModel, texts: list[str], max_len: int = 256, batch_size: int = 8) -> float:
    """exp(mean token NLL) over ``texts`` (each scored alone, truncated to ``max_len`` tokens)."""
    tok = gem.tokenizer
    ids = [tok(t, add_special_tokens=True)["input_ids"][:max_len] for t in texts]
    ids = [x for x in ids if len(x) >= 2]
    nll, count = 0.0, 0
    for i in range(0, len(ids), batch_size):
        batch = ids[i : i + batch_size]
        T = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), T), gem.pad_id)
        mask = torch.zeros(len(batch), T, dtype=torch.long)
        for j, x in enumerate(batch):
            input_ids[j, : len(x)] = torch.tensor(x)
            mask[j, : len(x)] = 1
        logits = gem.model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
        target = input_ids[:, 1:]
        lp = torch.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0]
        valid = mask[:, 1:].bool()
        nll -= lp[valid].sum().item()
        count += int(valid.sum())
    return math.exp(nll / count)


def quick_eval(
    gem: GEMModel, data: Path, heldout: list[str], limit: int | None = None, sample_prompt: str = ""
) -> dict[str, float | str]:
    t = time.perf_counter()
    out: dict[str, float | str] = {
        "stsb_spearman": round(sts_spearman(gem, data, limit), 2),
        "banking77_accuracy": round(banking77_accuracy(gem, data, limit), 2),
        "wiki_perplexity": round(perplexity(gem, heldout), 3),
    }
    out["seconds"] = round(time.perf_counter() - t, 1)
    if sample_prompt:
        out["sample"] = gem.chat(sample_prompt, max_new_tokens=40)
    return out


def eval_copy(gem: GEMModel, saved: Path | None = None) -> GEMModel:
    """Evaluate as users run it: bf16 where the CPU has it (weights copied, training untouched).

    A gated adapter is evaluated by loading what was saved (base + adapter), as users load it.
    """
    import copy

    from ..model import default_dtype

    if saved is not None and gem.config.adapter_scope == "special_only":
        return GEMModel.from_pretrained(saved, dtype=default_dtype())
    return GEMModel(copy.deepcopy(gem.model).to(default_dtype()), gem.tokenizer, gem.config)
