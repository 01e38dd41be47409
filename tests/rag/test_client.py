"""The qdrant-client engine's sources / remove_source / drop, its ``source`` index on a server,
and the engine interface both engines implement (without importing the store)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models

from gemlm.rag.client import ClientBackend
from gemlm.rag.edge import EdgeBackend
from gemlm.rag.types import Backend

from .test_store import IDENT, ids_for, unit_vectors

DIM = 16


class FakeServer:
    """A local-mode client standing in for a Qdrant server (tests never use the network): it
    keeps the payload indexes asked for and reports them in ``payload_schema`` as a server does,
    and records which reads ran."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.indexes: dict[str, dict[str, models.PayloadIndexInfo]] = {}
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def create_payload_index(self, collection: str, field: str, field_schema: Any, **_: Any):
        info = models.PayloadIndexInfo(data_type=field_schema, points=0)
        self.indexes.setdefault(collection, {})[field] = info

    def get_collection(self, collection: str) -> Any:
        info = self.client.get_collection(collection)
        schema = self.indexes.get(collection, {})
        return info.model_copy(update={"payload_schema": schema})

    def facet(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("facet")
        return self.client.facet(*args, **kwargs)

    def scroll(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("scroll")
        return self.client.scroll(*args, **kwargs)


def fake_server(path: Path) -> ClientBackend:
    backend = ClientBackend(path=path)
    backend.server, backend.client = True, FakeServer(backend.client)
    return backend


def write(backend: ClientBackend, collection: str, n: int = 30) -> None:
    """``n`` passages, a third each in sources s0, s1 and s2."""
    backend.create(collection, DIM, IDENT)
    payloads = [{"source": f"s{i % 3}", "text": f"passage {i}"} for i in range(n)]
    backend.upsert(collection, ids_for(n), unit_vectors(n), payloads)


def test_local_mode_makes_no_payload_index_and_counts_sources_by_scroll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ClientBackend(path=tmp_path / "q")
    made: list[Any] = []  # local mode ignores payload indexes (and warns that they do nothing)
    monkeypatch.setattr(backend.client, "create_payload_index", lambda *a, **k: made.append(a))
    write(backend, "c")
    assert made == []
    assert not backend.source_indexed("c")
    assert backend.sources("c") == {"s0": 10, "s1": 10, "s2": 10}
    assert backend.remove_source("c", "s1") == 10 and backend.remove_source("c", "s1") == 0
    assert backend.sources("c") == {"s0": 10, "s2": 10} and backend.count("c") == 20
    assert backend.ids_for_source("c", "s1") == set()
    backend.create("d", DIM, IDENT)
    assert backend.collections() == ["c", "d"]
    backend.drop("c")
    assert backend.collections() == ["d"] and not backend.exists("c")
    backend.close()


def test_a_server_collection_gets_a_source_index_and_counts_with_one_facet(
    tmp_path: Path,
) -> None:
    backend = fake_server(tmp_path / "q")
    write(backend, "c")
    server = backend.client
    assert server.indexes["c"]["source"].data_type == models.PayloadSchemaType.KEYWORD
    assert backend.source_indexed("c")
    server.calls.clear()
    assert backend.sources("c") == {"s0": 10, "s1": 10, "s2": 10}
    assert server.calls == ["facet"]  # no scroll over the points
    assert backend.remove_source("c", "s0") == 10
    assert backend.sources("c") == {"s1": 10, "s2": 10}
    backend.close()


def test_a_server_collection_without_the_index_is_counted_by_scroll(tmp_path: Path) -> None:
    backend = fake_server(tmp_path / "q")
    write(backend, "old")
    del backend.client.indexes["old"]  # created before gemlm made the index
    backend.client.calls.clear()
    assert not backend.source_indexed("old")
    assert backend.sources("old") == {"s0": 10, "s1": 10, "s2": 10}
    assert "facet" not in backend.client.calls and "scroll" in backend.client.calls
    backend.close()


def protocol_methods() -> set[str]:
    return {n for n, v in vars(Backend).items() if inspect.isfunction(v) and n[0] != "_"}


@pytest.mark.parametrize("engine", [EdgeBackend, ClientBackend])
def test_both_engines_implement_the_whole_interface(engine: type) -> None:
    assert {"sources", "remove_source", "drop", "collections"} <= protocol_methods()
    for name in protocol_methods():
        ours = inspect.signature(getattr(Backend, name))
        theirs = inspect.signature(getattr(engine, name))
        assert list(theirs.parameters)[: len(ours.parameters)] == list(ours.parameters), name


def test_the_shared_types_and_the_engines_import_without_torch_or_the_store() -> None:
    code = (
        "import sys; import gemlm.rag.types, gemlm.rag.edge, gemlm.rag.client; "
        "print(sorted({'torch', 'gemlm.rag.store'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
