"""Retrieval-augmented generation with one GEM model: index, retrieve and answer.

Modules: ``documents`` (readers + token-aware chunking), ``store`` (vector store with the
model identity stored per collection) and its engines ``edge`` (Qdrant Edge in-process, the
default) and ``client`` (qdrant-client: local mode or a Qdrant server), ``prompting`` (chat
prompt with numbered sources), ``reuse`` (query embedding + prefill in one forward), ``ask``
(retrieve + answer, streaming variant) and ``indexing`` (files -> passages -> vectors ->
store); the command line (``gemlm rag``) is ``gemlm/cli/rag.py``. Nothing heavy is imported
here, so ``gemlm --help`` stays fast.
"""

from __future__ import annotations
