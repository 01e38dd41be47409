from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from gemlm import masking
from gemlm.masking import PAD, PREFIX, SPECIAL, SUFFIX, Layout


def vis(layout: Layout, total: int | None = None, side: str = "right") -> list[list[int]]:
    seg = masking.batch_segments([layout], total, side)
    return masking.visibility(seg)[0].int().tolist()


def test_plain_text_is_causal() -> None:
    assert vis(Layout(3)) == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]


def test_suffix_sees_no_prefix_and_specials_not_each_other() -> None:
    assert vis(Layout(prefix=2, specials=2, suffix=2)) == [
        # P  P  S  S  X  X     (columns = keys)
        [1, 0, 0, 0, 0, 0],  # prefix: causal
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],  # special 0: prefix + itself
        [1, 1, 0, 1, 0, 0],  # special 1: prefix + itself, not special 0
        [0, 0, 1, 1, 1, 0],  # suffix: specials + earlier suffix, no prefix
        [0, 0, 1, 1, 1, 1],
    ]


def test_right_padding_sees_nothing_and_is_seen_by_nothing() -> None:
    m = vis(Layout(prefix=1, specials=1, suffix=1), total=5)
    assert m == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]


def test_left_padding() -> None:
    m = vis(Layout(prefix=1, specials=1, suffix=1), total=5, side="left")
    assert m == [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 1],
    ]


def test_reconstruction_format_is_the_same_layout() -> None:
    # "text <S> text": suffix length equals prefix length
    m = vis(Layout(prefix=2, specials=1, suffix=2))
    assert m[3] == [0, 0, 1, 1, 0] and m[4] == [0, 0, 1, 1, 1]


def test_additive_mask_uses_finfo_min_and_4d_shape() -> None:
    seg = masking.batch_segments([Layout(2, 1, 1), Layout(1, 1, 0)])
    for dtype in (torch.float32, torch.bfloat16):
        mask = masking.gem_attention_mask(seg, dtype)
        assert mask.shape == (2, 1, 4, 4) and mask.dtype == dtype
        assert set(mask.unique().tolist()) == {0.0, torch.finfo(dtype).min}
        assert not torch.isinf(mask).any()


def test_segments_and_positions() -> None:
    seg = masking.batch_segments([Layout(2, 1, 1), Layout(1, 1, 0)], padding_side="left")
    assert seg.tolist() == [[PREFIX, PREFIX, SPECIAL, SUFFIX], [PAD, PAD, PREFIX, SPECIAL]]
    assert masking.position_ids(seg).tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]


def test_bad_layouts() -> None:
    with pytest.raises(ValueError):
        Layout(-1)
    with pytest.raises(ValueError):
        masking.segments_for(Layout(3, 1, 1), 4)
    with pytest.raises(ValueError):
        masking.segments_for(Layout(1), 4, "middle")


def _suffix_grad_on_prefix(
    model, layout: Layout, mask: torch.Tensor, detach_specials: bool
) -> torch.Tensor:
    """Gradient of the suffix logits w.r.t. the prefix input embeddings."""
    seg = masking.batch_segments([layout])
    special = (seg == SPECIAL)[0]
    torch.manual_seed(0)
    embeds = torch.randn(1, layout.length, model.config.hidden_size, requires_grad=True)
    hooks = []
    if detach_specials:

        def detach(_module, _inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            h = torch.where(special[None, :, None], h.detach(), h)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        hooks = [layer.register_forward_hook(detach) for layer in model.model.layers]
    try:
        logits = model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=masking.position_ids(seg)
        ).logits
    finally:
        for h in hooks:
            h.remove()
    logits[0, (seg == SUFFIX)[0]].sum().backward()
    return embeds.grad[0, : layout.prefix]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_suffix_reads_prefix_only_through_specials(tiny_dir, attn: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(
        tiny_dir, dtype=torch.float32, attn_implementation=attn
    )
    layout = Layout(prefix=4, specials=2, suffix=3)
    seg = masking.batch_segments([layout])
    gem = masking.gem_attention_mask(seg)
    causal = masking.additive_mask(torch.tril(torch.ones(1, 9, 9, dtype=torch.bool)))

    # through the specials: information flows
    assert _suffix_grad_on_prefix(model, layout, gem, detach_specials=False).abs().sum() > 0
    # specials cut: exactly nothing flows from prefix to suffix under the GEM mask
    assert torch.equal(
        _suffix_grad_on_prefix(model, layout, gem, detach_specials=True),
        torch.zeros(4, model.config.hidden_size),
    )
    # ...whereas a plain causal mask leaks the prefix directly (the check can fail)
    assert _suffix_grad_on_prefix(model, layout, causal, detach_specials=True).abs().sum() > 0
