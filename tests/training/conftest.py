"""Fixtures shared by the training tests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gemlm.training import run


class PairsAsked(Exception):
    """Raised by the stubbed ``make_pairs``: what it was asked is all a test checks."""


class _Docs:
    """A stand-in for the loaded documents: ``map`` and ``filter`` keep it as it is."""

    def map(self, fn):
        return self

    def filter(self, fn):
        return self


@pytest.fixture
def asked_pairs(monkeypatch) -> SimpleNamespace:
    """Stub ``run.make_pairs`` (and the documents it reads): each call appends
    ``(n_pairs, keyword arguments)`` to ``.calls``, then raises ``.error``
    (:class:`PairsAsked`)."""
    calls: list[tuple[int, dict]] = []

    def fake_pairs(docs, mix, n, **kwargs):
        calls.append((n, kwargs))
        raise PairsAsked

    monkeypatch.setattr(run, "make_pairs", fake_pairs)
    monkeypatch.setattr(run, "load_documents", lambda *a, **k: _Docs())
    return SimpleNamespace(calls=calls, error=PairsAsked)
