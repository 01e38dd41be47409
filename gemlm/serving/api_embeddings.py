"""``POST /v1/embeddings`` in the OpenAI shape, served through the micro-batcher.

An input longer than the model's embedding window is refused (400 naming its index, its token
count and the window) unless the request says ``"truncate": true`` (Hugging Face TEI's field) or
the server runs with ``--truncate``. Token-id inputs are refused unless the server runs with
``--accept-token-ids``, and even then ids that are not this tokenizer's own are: a server cannot
tell this model's ids from another tokenizer's, and LangChain's ``OpenAIEmbeddings`` sends
tiktoken ``cl100k_base`` ids unless created with ``check_embedding_ctx_length=False``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .context import Embedded, EmbedItem
from .errors import APIError
from .handler import Handler, documented
from .protocol import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage

router = APIRouter()

LANGCHAIN_HINT = (
    "LangChain's OpenAIEmbeddings sends tiktoken (cl100k_base) token ids unless it is created "
    "with check_embedding_ctx_length=False, which makes it send text."
)


class ServingEmbedding(Handler):
    """One ``/v1/embeddings`` request: validated, batched with its neighbours, answered."""

    async def validate(self) -> tuple[EmbeddingRequest, list[EmbedItem]]:
        """The request and its inputs as the micro-batcher carries them, or the 4xx."""
        req = await self.parse(EmbeddingRequest)
        ctx = self.ctx
        self.check_model(req.model)
        if req.dimensions is not None and req.dimensions > ctx.embedding_dim:
            raise APIError(
                400,
                f"dimensions={req.dimensions} exceeds the model's {ctx.embedding_dim}",
                param="dimensions",
                code="invalid_value",
            )
        inputs = req.inputs()
        if len(inputs) > ctx.limits.max_inputs:
            raise APIError(
                400,
                f"input holds {len(inputs)} items; the limit is {ctx.limits.max_inputs}",
                param="input",
                code="too_many_inputs",
            )
        for i, item in enumerate(inputs):
            if not isinstance(item, str):
                self.check_token_ids(item, f"input[{i}]")
        truncate = ctx.limits.truncate if req.truncate is None else req.truncate
        return req, [EmbedItem(x, truncate) for x in inputs]

    def check_token_ids(self, ids: list[int], what: str) -> None:
        """Token ids are taken only by a server told its clients use this model's tokenizer,
        and never the GEM tokens, which the server appends itself."""
        if not self.ctx.limits.accept_token_ids:
            raise APIError(
                400,
                f"{what} is a list of token ids, which this server does not embed: it cannot "
                "tell this model's token ids from another tokenizer's. Send text instead. "
                + LANGCHAIN_HINT
                + " (A server whose clients tokenize with this model's own tokenizer can be "
                "started with --accept-token-ids.)",
                param=what,
                code="token_ids_not_accepted",
            )
        self.check_ids(ids, what)
        gem_id = next((t for t in ids if t in self.ctx.special_ids), None)
        if gem_id is not None:
            raise APIError(
                400,
                f"{what} holds token id {gem_id}, a GEM token: the server appends those itself",
                param=what,
                code="invalid_value",
            )

    def refusal(self, index: int, result: Embedded) -> APIError:
        """The 400 for an input the micro-batch job refused."""
        what = f"input[{index}]"
        if result.refused == "too_long":
            return APIError(
                400,
                f"{what} has {result.tokens} tokens (with the model's prompt and readout "
                f"tokens); the embedding window is {self.ctx.embedding_window} tokens. Shorten "
                'it, or send "truncate": true to embed only its beginning.',
                param=what,
                code="context_length_exceeded",
            )
        return APIError(
            400,
            f"{what}: these token ids are not this model's tokenizer's encoding of any text "
            "(decoded and encoded again they give other ids): they were likely made by another "
            "tokenizer. " + LANGCHAIN_HINT,
            param=what,
            code="foreign_token_ids",
        )

    async def create(self) -> JSONResponse:
        req, items = await self.validate()
        async with self.ctx.admit():
            results = await self.ctx.batcher.submit(items)
        for i, result in enumerate(results):
            if result.vector is None:
                raise self.refusal(i, result)
        tokens = sum(r.tokens for r in results)
        data = [
            Embedding.encode(i, r.vector, req.dimensions, req.encoding_format)  # type: ignore[arg-type]
            for i, r in enumerate(results)
        ]
        usage = EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        return self.respond(EmbeddingResponse(data=data, model=self.ctx.model_name, usage=usage))


@router.post("/v1/embeddings", **documented(EmbeddingResponse, request=EmbeddingRequest))
async def create_embedding(request: Request) -> JSONResponse:
    return await ServingEmbedding(request).create()
