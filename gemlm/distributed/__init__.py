"""Bulk embedding on Ray: one GEMModel per Ray actor, any number of actors and machines.

Each actor is one process holding one model with a few torch threads; actors add up across
cores and machines with one code path: a local Ray on a laptop, ``address=`` for a running
cluster (``ray start --head``, then ``ray start --address=...`` on each machine).
``benchmarks/ray_embed.py`` measures 2 actors x 1 thread against 1 process x 2 threads.

Files (``embed_files_ray``): ``.txt`` (one text per line, blank lines skipped) and ``.jsonl``
(a ``"text"`` field, an optional ``"id"``) are read as a Ray Dataset; every row gets its id,
the given one or ``text_id`` (uuid5 of the text's sha256, like the RAG passage ids), then
``map_batches`` hands groups of rows to an actor pool where each actor holds one model
(``torch.set_num_threads(threads)``, ``num_cpus=threads`` reserved). The driver receives rows
``(id, text, vector)`` as they stream back and writes them to ``out`` as Parquet parts, each
written to a hidden temporary name and renamed, so a killed run leaves only complete parts.
A rerun reads the ids already in ``out`` and the actors drop those rows before embedding, so
it completes the job and nothing is written twice.

Passages (``index_paths_ray``): ``gemlm.rag.indexing``'s chunking, skip and stale removal, with
the passages still to embed sent through the same actors and upserted from the driver.

The model reaches each actor as a name (a folder path or an alias) that the worker loads
itself, never as a pickled model.
"""

from __future__ import annotations

from .actors import ActorSpec, Embedder, embed_dataset, ray_session, require_ray
from .inputs import ID_NAMESPACE, EngineError, expand_inputs, read_inputs, text_id
from .parts import check_manifest, embeddings_table, read_embeddings, vector_matrix, write_part
from .run import EmbedReport, embed_files_ray, index_paths_ray

__all__ = [
    "ID_NAMESPACE",
    "ActorSpec",
    "EmbedReport",
    "Embedder",
    "EngineError",
    "check_manifest",
    "embed_dataset",
    "embed_files_ray",
    "embeddings_table",
    "expand_inputs",
    "index_paths_ray",
    "ray_session",
    "read_embeddings",
    "read_inputs",
    "require_ray",
    "text_id",
    "vector_matrix",
    "write_part",
]
