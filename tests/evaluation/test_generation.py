"""MMLU / ARC prompts in the reference harnesses' formats, and the fixed subsets."""

from __future__ import annotations

from gemlm.evaluation.generation import (
    arc_items,
    mmlu_cloze_items,
    mmlu_letter_items,
    read_mmlu,
    sample_mmlu,
)


def test_mmlu_prompts(task_data):
    test = sample_mmlu(read_mmlu(task_data / "mmlu", "test"), 2, 0, None)
    dev = read_mmlu(task_data / "mmlu", "dev")
    letters = mmlu_letter_items(test, dev, shots=5)
    assert len(letters) == 4 and letters[0].choices == [" A", " B", " C", " D"]
    ctx = letters[0].context
    assert ctx.startswith(
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
    )
    assert ctx.count("\nAnswer:") == 6 and ctx.endswith(
        "\nA. cat\nB. dog\nC. rain\nD. stocks\nAnswer:"
    )
    assert "anatomy question 0?\nA. cat\nB. dog\nC. rain\nD. stocks\nAnswer: A\n\n" in ctx
    cloze = mmlu_cloze_items(test)
    assert cloze[0].context.startswith("The following are questions about anatomy.\nQuestion: ")
    assert cloze[0].context.endswith("\nAnswer:") and cloze[0].choices[0] == " cat"


def test_subsets_are_fixed(task_data):
    full = read_mmlu(task_data / "mmlu", "test")
    assert sample_mmlu(full, 2, 0, None) == sample_mmlu(full, 2, 0, None)
    capped = sample_mmlu(full, None, 0, 3)
    assert sum(map(len, capped.values())) == 3 and set(capped) == {"anatomy", "virology"}


def test_arc_labels(task_data):
    items = arc_items(task_data / "arc/test.jsonl", None, 0, None)
    assert [it.gold for it in items] == [1, 1, 1, 1]  # numeric and letter labels
    assert (
        items[0].context == "Question: which 0?\nAnswer:" and items[0].choices[1] == " the weather"
    )
    assert len(arc_items(task_data / "arc/test.jsonl", 2, 0, None)) == 2
