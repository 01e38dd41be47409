"""benchmarks._common: the timing loop on a fake clock, the result writer, the data loaders on
tiny files in a temporary data folder. Nothing here loads a model or times anything real."""

from __future__ import annotations

import ast
import csv
import json
import sys
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmarks import _common
from benchmarks._common import (
    agreement,
    best_of,
    collate_batches,
    command_line,
    cpu_facts,
    load_squad,
    machine,
    md_table,
    memory_mb,
    squad_dev,
    squad_paragraphs,
    stsb_rows,
    stsb_sentences,
    text_pool,
    train_steps,
    wiki_texts,
    write_result,
)

BENCHMARKS = Path(_common.__file__).resolve().parent


class FakeClock:
    """A clock that moves only when a run says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_best_of_warms_up_interleaves_and_keeps_each_runs_best(capsys) -> None:
    clock, calls = FakeClock(), []
    took = {"a": iter([9.0, 3.0, 5.0]), "b": iter([9.0, 4.0, 2.0])}  # warm-up, round 0, round 1

    def run(name: str) -> None:
        calls.append(name)
        clock.now += next(took[name])

    best = best_of({"a": partial(run, "a"), "b": partial(run, "b")}, 2, clock=clock)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # warm-up, then a b per round
    assert best == {"a": 3.0, "b": 2.0}  # the warm-up's 9 s never count
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "round 0: a                               3.00 s"
    assert [line.split(":")[0] for line in lines] == ["round 0"] * 2 + ["round 1"] * 2


def test_best_of_without_warm_up_with_own_times_and_silent(capsys) -> None:
    own = {"x": iter([0.5, 0.25]), ("y", 1): iter([1.0, 2.0])}  # any hashable names
    best = best_of(
        {name: partial(next, seconds) for name, seconds in own.items()},
        2,
        warmup=False,
        self_timed=True,
        show=None,
        clock=lambda: pytest.fail("a self-timed run is not timed around"),
    )
    assert best == {"x": 0.25, ("y", 1): 1.0}
    assert capsys.readouterr().out == ""


def test_best_of_custom_line(capsys) -> None:
    clock = FakeClock()

    def run() -> None:
        clock.now += 2.0

    best_of({"enc": run}, 1, warmup=False, clock=clock, show=lambda n, s: f"{n} {10 / s:.1f}/s")
    assert capsys.readouterr().out == "round 0: enc 5.0/s\n"


def test_cpu_facts_keeps_the_first_cpu_and_the_flags_that_matter() -> None:
    info = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 amx_bf16 sse\n\n"
    info += "processor\t: 1\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx2 amx_bf16 sse\n"
    assert cpu_facts(info) == {"cpu": "Intel Xeon", "cpu_flags": ["avx2", "amx_bf16"]}
    assert cpu_facts("")["cpu"]  # no /proc/cpuinfo: still names the CPU (platform module)


def test_machine_names_the_host_and_torch_only_when_asked() -> None:
    bare = machine(with_torch=False)
    assert "torch" not in bare and bare["cpus"] >= 1 and isinstance(bare["cpu_flags"], list)
    full = machine(with_torch=True)
    assert full["torch_threads"] == torch.get_num_threads()
    assert full["auto_dtype"] in ("bfloat16", "float32")
    assert machine()["torch"] == torch.__version__  # None: torch is imported here


def test_write_result_adds_the_machine_and_writes_markdown_beside(tmp_path: Path) -> None:
    result = {"model": "m", "ratios": {"a": 1.5}}
    out = tmp_path / "deep" / "r.json"  # folders made
    written = write_result(out, result, markdown="# table\n", indent=1)
    on_disk = json.loads(out.read_text())
    assert on_disk == written and list(on_disk) == ["model", "ratios", "machine"]
    assert on_disk["machine"]["cpu"] == machine(with_torch=False)["cpu"]
    assert out.read_text().startswith('{\n "model"') and out.read_text().endswith("}\n")
    assert out.with_suffix(".md").read_text() == "# table\n"
    assert result == {"model": "m", "ratios": {"a": 1.5}}  # the caller's dict untouched


def test_write_result_keeps_a_machine_block_it_is_given(tmp_path: Path) -> None:
    written = write_result(tmp_path / "r.json", {"machine": {"threads": 2}})
    assert written == {"machine": {"threads": 2}} and not (tmp_path / "r.md").exists()


def test_md_table() -> None:
    assert md_table(["", "s"], [["one", 1.0], ["two", ""]]) == [
        "| | s |",
        "|---|---:|",
        "| one | 1.0 |",
        "| two | |",
    ]


def test_command_line_is_the_module_form(monkeypatch) -> None:
    main = SimpleNamespace(__spec__=SimpleNamespace(name="benchmarks.vector_store"))
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["/x/benchmarks/vector_store.py", "--sizes", "10 000"])
    assert command_line() == "python -m benchmarks.vector_store --sizes '10 000'"
    monkeypatch.setitem(sys.modules, "__main__", SimpleNamespace(__spec__=None))
    assert command_line() == "python /x/benchmarks/vector_store.py --sizes '10 000'"


def write_stsb(data: Path, rows: list[list[str]]) -> None:
    (data / "stsbenchmark").mkdir(parents=True)
    with open(data / _common.STSB_TEST, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def test_stsb_sentences_are_both_columns_deduplicated_in_file_order(tmp_path: Path) -> None:
    write_stsb(tmp_path, [["a, quoted", "b", "2.5"], ["b", "c", "1.0"], ["a, quoted", "d", "0"]])
    assert stsb_rows(tmp_path)[0] == ["a, quoted", "b", "2.5"]
    assert stsb_sentences(data=tmp_path) == ["a, quoted", "b", "c", "d"]
    assert stsb_sentences(2, data=tmp_path) == ["a, quoted", "b"]


def test_text_pool_tops_up_with_seeded_synthetic_texts(tmp_path: Path) -> None:
    write_stsb(tmp_path / "with", [["one sentence", "another one", "1"]])
    pool = text_pool(5, data=tmp_path / "with")
    assert pool[:2] == ["one sentence", "another one"] and len(pool) == 5
    (tmp_path / "without").mkdir()  # no STS-B file: all synthetic, the same every time
    missing = text_pool(4, data=tmp_path / "without")
    assert missing == text_pool(4, data=tmp_path / "without") and len(set(missing)) == 4
    assert text_pool(1, data=tmp_path / "with") == ["one sentence"]


def write_squad(data: Path) -> dict:
    def para(text: str, qid: str) -> dict:
        return {"context": text, "qas": [{"id": qid, "question": f"q{qid}?", "answers": [
            {"text": text.split()[0], "answer_start": 0}]}]}  # fmt: skip

    squad = {
        "version": "1.1",
        "data": [
            {"title": "A", "paragraphs": [para("alpha one", "1"), para("alpha two", "2")]},
            {"title": "B", "paragraphs": [para("beta one", "3")]},
        ],
    }
    (data / "squad_v1.1").mkdir(parents=True)
    (data / _common.SQUAD_DEV).write_text(json.dumps(squad), encoding="utf-8")
    return squad


def test_load_squad_cuts_paragraphs_and_names_each_questions_paragraph(tmp_path: Path) -> None:
    squad = write_squad(tmp_path)
    assert squad_dev(tmp_path) == squad
    full, questions = load_squad(None, tmp_path)
    assert full == squad
    assert [q["doc_id"] for q in questions] == ["A#0", "A#1", "B#0"]
    assert questions[1] == {
        "id": "2",
        "question": "q2?",
        "answers": ["alpha"],
        "doc_id": "A#1",
        "title": "A",
        "context": "alpha two",  # what rag_squad answers from in its "gold" context
    }
    cut, cut_questions = load_squad(2, tmp_path)  # the first two paragraphs: article A only
    assert [a["title"] for a in cut["data"]] == ["A"] and len(cut_questions) == 2
    assert load_squad(0, tmp_path)[0]["data"] == []
    assert squad_paragraphs(None, tmp_path) == ["alpha one", "alpha two", "beta one"]
    assert squad_paragraphs(2, tmp_path) == ["alpha one", "alpha two"]


def test_wiki_texts_reads_a_wikiextractor_file(tmp_path: Path) -> None:
    part = tmp_path / _common.WIKI / "AA" / "wiki_00"
    part.parent.mkdir(parents=True)
    text = "the cat sat on the mat and the dog sat on the rug all day"
    part.write_text(f'<doc id="1" url="u" title="Cats">\nCats\n\n{text}\n</doc>\n')
    assert text in list(wiki_texts("AA/wiki_00", data=tmp_path)["text"])


def test_collate_batches_cuts_rows_and_wraps_them_as_features() -> None:
    batches = collate_batches(lambda feats: [f["input_ids"] for f in feats], [[1], [2], [3]], 2)
    assert batches == [[[1], [2]], [[3]]]


def test_train_steps_steps_once_per_batch_and_clears_the_gradients() -> None:
    weight = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([weight], lr=0.5)

    def module(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": (weight * x).sum()}

    train_steps(module, [{"x": torch.ones(2)}, {"x": torch.ones(2)}], opt)
    assert torch.equal(weight.detach(), torch.zeros(2)) and weight.grad is None


def test_agreement() -> None:
    a = np.array([[3.0, 4.0], [1.0, 0.0]])
    assert agreement(a, a) == {"max_abs_diff": 0.0, "min_cosine": 1.0}
    assert agreement(a, 2 * a)["min_cosine"] == pytest.approx(1.0)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_memory_mb_of_this_process() -> None:
    mem = memory_mb()
    assert 0 < mem["rss_mb"] <= mem["peak_rss_mb"]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def uses_sys_path(path: Path) -> bool:
    return any(
        isinstance(n, ast.Attribute) and n.attr == "path" and getattr(n.value, "id", "") == "sys"
        for n in ast.walk(ast.parse(path.read_text()))
    )


def test_no_benchmark_edits_sys_path() -> None:
    """They import each other's code as the ``benchmarks`` package (``python -m``)."""
    assert [p.name for p in BENCHMARKS.glob("*.py") if uses_sys_path(p)] == []


def test_the_parity_child_imports_nothing_an_older_tree_lacks() -> None:
    """engine_parity runs _parity_child.py against a baseline worktree: gemlm, numpy, stdlib."""
    outside = {m.split(".")[0] for m in imports_of(BENCHMARKS / "_parity_child.py")}
    assert outside - set(sys.stdlib_module_names) == {"gemlm", "numpy"}


def test_stage_runtime_reads_the_trainers_end_row(tmp_path: Path) -> None:
    log = tmp_path / "log_history.json"
    log.write_text(json.dumps([{"loss": 1.0, "step": 5}, {"train_runtime": 12.5, "step": 10}]))
    assert _common.stage_runtime(log) == (12.5, 10)
