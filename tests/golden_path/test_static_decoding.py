"""Static-cache and compiled decoding (``use_static_cache``) on each kind, loaded from its folder
as a user would: the same greedy tokens as eager decoding (plain prompts, chat, streaming, a
second length bucket), seeded sampling unchanged, and the paths that stay eager."""

from __future__ import annotations

import pytest
from torch._dynamo.utils import counters

from gemlm.model import GEMModel
from gemlm.static_decoding import StaticDecoding, bucket

PROMPTS = ["the cat sat on the", "paris is the capital of france and berlin"]


@pytest.fixture(scope="module")
def compiled(folders) -> dict[str, GEMModel]:
    gems = {k: GEMModel.from_pretrained(str(f)) for k, f in folders.items()}
    for gem in gems.values():  # buckets of 32, 64, ... positions: the tiny model's context is 256
        gem.generator.use_static_cache(warm=[8], smallest=32)
    return gems


def _ids(gem: GEMModel, prompt: str | list[dict[str, str]], chat: bool = False, **kw) -> list:
    return gem.complete(prompt, chat=chat, max_new_tokens=12, temperature=0.0, **kw).token_ids


def test_compiled_greedy_tokens_equal_eager(compiled, gems, kind) -> None:
    fast, eager = compiled[kind], gems[kind]
    assert fast.generator.static is not None and eager.generator.static is None
    counters.clear()  # the fixture compiled the first bucket; the second compiles here
    for prompt in PROMPTS:
        assert _ids(fast, prompt) == _ids(eager, prompt)
    chat = [{"role": "user", "content": "name a city"}]
    assert _ids(fast, chat, chat=True) == _ids(eager, chat, chat=True)
    # a longer run lands in another length bucket (another cache, another compiled graph)
    long = {"max_new_tokens": 40, "temperature": 0.0}
    want = eager.complete(PROMPTS[0], **long).token_ids
    assert fast.complete(PROMPTS[0], **long).token_ids == want
    assert {32, 64} <= set(fast.generator.static._caches)
    assert not counters["resumes"]  # each compiled step is one graph: the gate does not split it
    # transformers took the compiled path (it falls back to eager silently otherwise)
    hf = getattr(fast.model, "get_base_model", lambda: fast.model)()
    assert hasattr(hf, "_compiled_call")


def test_compiled_stream_and_seeded_sampling_equal_eager(compiled, gems, kind) -> None:
    fast, eager = compiled[kind], gems[kind]
    pieces = list(fast.stream(PROMPTS[1], max_new_tokens=10, temperature=0.0))
    assert "".join(pieces) == eager.complete(PROMPTS[1], max_new_tokens=10, temperature=0.0).text
    sample = {"max_new_tokens": 10, "temperature": 0.9, "top_p": 0.95, "seed": 3}
    assert (
        fast.complete(PROMPTS[0], **sample).token_ids
        == eager.complete(PROMPTS[0], **sample).token_ids
    )


def test_static_cache_without_compile_equals_eager(folders, gems, kind) -> None:
    fast = GEMModel.from_pretrained(str(folders[kind])).use_static_cache(compile=False)
    for prompt in PROMPTS:
        assert _ids(fast, prompt) == _ids(gems[kind], prompt)


def test_a_prefix_cache_or_a_busy_bucket_decodes_eagerly(gems) -> None:
    static, config = StaticDecoding(compile=False), gems["plain"].model.config
    with static.kwargs(config, 10, 64) as first, static.kwargs(config, 20, 64) as second:
        assert "cache" in first and second == {}  # same bucket, in use: eager
    with static.kwargs(config, 10, 64) as again:
        assert again["cache"] is first["cache"]  # released, reused, reset
    assert bucket(10, 2048) == 256 and bucket(257, 2048) == 512 and bucket(10, 64) == 64
