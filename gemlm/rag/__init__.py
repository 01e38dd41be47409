"""Retrieval-augmented generation with one GEM model: index, retrieve and answer.

Modules: ``documents`` (readers + token-aware chunking), ``store`` (Qdrant wrapper with the
model identity stored per collection), ``prompting`` (chat prompt with numbered sources),
``reuse`` (query embedding + prefill in one forward), ``ask`` (retrieve + answer, streaming
variant), ``indexing`` (files -> passages -> vectors -> Qdrant), ``cli`` (``gemlm rag``).
Nothing heavy is imported here, so ``gemlm --help`` stays fast.
"""

from __future__ import annotations
