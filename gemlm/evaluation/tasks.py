"""mteb tasks built from :class:`TaskData`: subclasses of mteb's own task types whose
``load_data`` fills ``self.dataset`` from the local files, so every metric is mteb's."""

from __future__ import annotations

from typing import Any

from datasets import Dataset, DatasetDict
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.clustering import AbsTaskClustering
from mteb.abstasks.pair_classification import AbsTaskPairClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata

from .readers import TaskData

MTEB_TYPES = {
    "sts": ("STS", AbsTaskSTS),
    "classification": ("Classification", AbsTaskClassification),
    "pair_classification": ("PairClassification", AbsTaskPairClassification),
    "clustering": ("Clustering", AbsTaskClustering),
    "retrieval": ("Retrieval", AbsTaskRetrieval),
}


def _metadata(data: TaskData) -> TaskMetadata:
    spec = data.spec
    return TaskMetadata(
        name=spec.name,
        type=MTEB_TYPES[spec.type][0],
        description=spec.description or f"{spec.name} from local files ({spec.source_file})",
        reference=None,
        dataset={"path": f"local/{spec.name}", "revision": "local"},
        category="t2t",
        modalities=["text"],
        eval_splits=[spec.eval_split],
        eval_langs=["eng-Latn"],
        main_score=spec.main_score,
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators=None,
        dialect=None,
        sample_creation=None,
        bibtex_citation="",
    )


def _table_dataset(data: TaskData) -> DatasetDict:
    spec, out = data.spec, {}
    for split, rows in data.splits.items():
        if spec.type == "sts":
            cols = {k: [r[k] for r in rows] for k in ("sentence1", "sentence2", "score")}
        elif spec.type == "pair_classification":
            cols = {k: [r[k] for r in rows] for k in ("sentence1", "sentence2")}
            cols["labels"] = [r["label"] for r in rows]
        elif spec.type == "clustering":
            cols = {"sentences": [r["text"] for r in rows], "labels": [r["label"] for r in rows]}
        else:
            names = sorted({r["label"] for s in data.splits.values() for r in s})
            ids = {n: i for i, n in enumerate(names)}
            cols = {"text": [r["text"] for r in rows], "label": [ids[r["label"]] for r in rows]}
        out[split] = Dataset.from_dict(cols)
    return DatasetDict(out)


def _retrieval_dataset(data: TaskData) -> dict[str, Any]:
    corpus = Dataset.from_list(
        [{"id": d, "title": v["title"], "text": v["text"]} for d, v in data.corpus.items()]
    )
    queries = Dataset.from_list([{"id": q, "text": t} for q, t in data.queries.items()])
    split = {"corpus": corpus, "queries": queries, "relevant_docs": data.qrels, "top_ranked": None}
    return {"default": {data.spec.eval_split: split}}


def build_task(data: TaskData, seed: int = 42, quick: bool = False) -> Any:
    """An instance of a fresh mteb task subclass for ``data`` (already read and checked);
    ``quick`` (a ``--limit`` run) uses 2 classification/clustering experiments instead of 10."""
    spec = data.spec
    base = MTEB_TYPES[spec.type][1]

    def load_data(self: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        self.dataset = (
            _retrieval_dataset(data) if spec.type == "retrieval" else _table_dataset(data)
        )
        self.data_loaded = True

    attrs: dict[str, Any] = {"metadata": _metadata(data), "load_data": load_data}
    if spec.type == "sts":
        attrs["min_score"], attrs["max_score"] = spec.score_range or (0, 5)
    if spec.type == "clustering":
        n = len(data.splits[spec.eval_split])
        attrs.update(
            max_fraction_of_documents_to_embed=None,
            max_document_to_embed=n,
            max_documents_per_cluster=min(n, 16_384),
        )
    for key in ("samples_per_label", "n_experiments", "n_clusters", "max_documents_per_cluster"):
        if key in spec.options:
            attrs[key] = spec.options[key]
    if quick and spec.type in ("classification", "clustering"):
        attrs["n_experiments" if spec.type == "classification" else "n_clusters"] = 2
    cls = type(f"Local{spec.type.title().replace('_', '')}_{spec.name}", (base,), attrs)
    return cls(seed=seed)
