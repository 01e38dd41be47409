"""A real uvicorn on 127.0.0.1 (free port) serving the tiny Llama, shared by the serving tests;
checks of a body against its protocol model (``same``) and of a server-sent-events body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from gemlm.model import GEMModel
from gemlm.serving import BatchSettings, ServeLimits, create_app, serve_in_thread

API_KEY = "test-key"
MODEL = "tiny-gem"
LIMITS = ServeLimits(
    max_body_bytes=64 * 1024,
    max_inputs=16,
    max_input_tokens=200,
    max_prompts=4,
    max_n=3,
    max_output_tokens=64,
    default_chat_max_tokens=24,
)


@dataclass
class Server:
    url: str
    app: FastAPI
    gem: GEMModel

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="session")
def gem(tiny_llama_dir) -> GEMModel:
    return GEMModel.from_pretrained(str(tiny_llama_dir), dtype="float32")


@pytest.fixture(scope="session")
def server(gem: GEMModel) -> Iterator[Server]:
    app = create_app(
        gem,
        model_name=MODEL,
        api_key=API_KEY,
        limits=LIMITS,
        batching=BatchSettings(max_batch=8, max_wait_ms=20, row_tokens=16, max_tokens=32),
    )
    with serve_in_thread(app) as url:
        yield Server(url, app, gem)


def same(model: type[BaseModel], wire: dict[str, Any], **dump: Any) -> None:
    """``wire`` validates against ``model`` and is what the model dumps: the same fields, in
    the same order, nothing left out or added."""
    parsed = model.model_validate(wire)
    assert json.dumps(parsed.model_dump(**dump)) == json.dumps(wire)


def events(r: httpx.Response) -> list[dict[str, Any]]:
    """The JSON events of a server-sent-events body, which must end with ``data: [DONE]``."""
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    blocks = r.text.split("\n\n")
    assert blocks[-2:] == ["data: [DONE]", ""] and all(b.startswith("data: ") for b in blocks[:-1])
    return [json.loads(b.removeprefix("data: ")) for b in blocks[:-2]]
