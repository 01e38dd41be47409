"""GEMTrainingConfig: defaults, YAML recipes with key=value overrides, and validation."""

from __future__ import annotations

import warnings
from dataclasses import fields
from pathlib import Path

import pytest

from gemlm.training.config import GEMTrainingConfig


def recipe(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_defaults_construct():
    cfg = GEMTrainingConfig()
    assert cfg.gem_prob == 0.2
    assert cfg.num_special_tokens == 1
    assert cfg.to_dict()["ntp_lr"] == 1e-4


def test_list_defaults_are_not_shared():
    a, b = GEMTrainingConfig(), GEMTrainingConfig()
    assert a.lora_target_modules is None
    a.lora_target_modules = ["q_proj"]
    assert b.lora_target_modules is None


def test_from_yaml_reads_the_file(tmp_path):
    path = recipe(tmp_path, "ntp_steps: 10\ngem_format: split\nlora_target_modules: [q, v]\n")
    cfg = GEMTrainingConfig.from_yaml(path)
    assert cfg.ntp_steps == 10
    assert cfg.gem_format == "split"
    assert cfg.lora_target_modules == ["q", "v"]
    assert cfg.contrastive_steps == GEMTrainingConfig().contrastive_steps


def test_from_yaml_accepts_a_str_path_and_an_empty_file(tmp_path):
    cfg = GEMTrainingConfig.from_yaml(str(recipe(tmp_path, "")))
    assert cfg == GEMTrainingConfig()


def test_override_wins_over_the_file(tmp_path):
    path = recipe(tmp_path, "ntp_steps: 10\nseed: 3\n")
    cfg = GEMTrainingConfig.from_yaml(path, ["ntp_steps=25", "bf16=false"])
    assert cfg.ntp_steps == 25
    assert cfg.seed == 3
    assert cfg.bf16 is False


def test_overrides_without_a_file():
    cfg = GEMTrainingConfig.from_yaml(None, ["gem_prob=0.5", "prompt='query: '"])
    assert cfg.gem_prob == 0.5
    assert cfg.prompt == "query: "  # values are YAML: quotes keep the trailing space


def test_override_values_are_parsed_as_yaml():
    with pytest.raises(TypeError, match="prompt"):  # unquoted `query: x` is a YAML mapping
        GEMTrainingConfig.from_yaml(None, ["prompt=query: x"])


def test_exponent_float_in_yaml_becomes_float(tmp_path):
    cfg = GEMTrainingConfig.from_yaml(recipe(tmp_path, "ntp_lr: 1e-4\ncontrastive_lr: 3e-6\n"))
    assert isinstance(cfg.ntp_lr, float) and cfg.ntp_lr == 1e-4
    assert isinstance(cfg.contrastive_lr, float) and cfg.contrastive_lr == 3e-6


def test_exponent_float_override_becomes_float():
    cfg = GEMTrainingConfig.from_yaml(None, ["ntp_lr=2e-5"])
    assert isinstance(cfg.ntp_lr, float) and cfg.ntp_lr == 2e-5


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ValueError, match="ntp_stepz"):
        GEMTrainingConfig.from_yaml(recipe(tmp_path, "ntp_stepz: 10\n"))
    with pytest.raises(ValueError, match="learning_rate"):
        GEMTrainingConfig.from_yaml(None, ["learning_rate=1e-4"])


@pytest.mark.parametrize(
    ("text", "name"),
    [("ntp_steps: ten\n", "ntp_steps"), ("bf16: 3\n", "bf16"), ("ntp_steps: 1.5\n", "ntp_steps")],
)
def test_wrong_type_is_a_type_error_naming_the_field(tmp_path, text, name):
    with pytest.raises(TypeError, match=name):
        GEMTrainingConfig.from_yaml(recipe(tmp_path, text))


def test_wrong_type_in_the_constructor():
    with pytest.raises(TypeError, match="seed"):
        GEMTrainingConfig(seed=True)
    with pytest.raises(TypeError, match="lora_target_modules"):
        GEMTrainingConfig(lora_target_modules=["q", 1])


def test_int_is_accepted_for_a_float_field():
    assert GEMTrainingConfig(gem_prob=1).gem_prob == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tuning": "half"},
        {"gem_prob": 2},
        {"gem_format": "bogus"},
        {"token_dropout": 1.0},
        {"num_special_tokens": 0},
        {"contrastive_batch_size": 1},
    ],
)
def test_invalid_values_raise(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        GEMTrainingConfig(**kwargs)


def test_invalid_value_from_yaml_raises(tmp_path):
    with pytest.raises(ValueError, match="tuning"):
        GEMTrainingConfig.from_yaml(recipe(tmp_path, "tuning: half\n"))


def test_seq_len_too_small_for_the_gem_layout(tmp_path):
    text = "ntp_seq_len: 10\ngem_format: split\nmin_prefix: 8\nmin_suffix: 8\n"
    with pytest.raises(ValueError, match="ntp_seq_len"):
        GEMTrainingConfig.from_yaml(recipe(tmp_path, text))


def test_seq_len_exactly_large_enough_is_accepted():
    cfg = GEMTrainingConfig(
        ntp_seq_len=19, gem_format="split", min_prefix=8, min_suffix=8, num_special_tokens=3
    )
    assert cfg.ntp_seq_len == 19
    with pytest.raises(ValueError, match="ntp_seq_len"):
        GEMTrainingConfig(
            ntp_seq_len=18, gem_format="split", min_prefix=8, min_suffix=8, num_special_tokens=3
        )


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        GEMTrainingConfig.from_yaml(tmp_path / "nope.yaml")


def test_yaml_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ValueError):
        GEMTrainingConfig.from_yaml(recipe(tmp_path, "- a\n- b\n"))


def test_override_without_equals_sign():
    with pytest.raises(ValueError, match="ntp_steps"):
        GEMTrainingConfig.from_yaml(None, ["ntp_steps"])


def test_help_table_lists_every_field_with_help():
    table = GEMTrainingConfig.help_table()
    assert [name for name, _, _ in table] == [f.name for f in fields(GEMTrainingConfig)]
    for name, default, help_text in table:
        assert help_text.strip(), name
        assert default == repr(getattr(GEMTrainingConfig(), name))


@pytest.mark.parametrize(
    "bad",
    [{"min_prefix": -3}, {"ntp_lr": -1.0}, {"ntp_batch_size": 0}, {"save_steps": 0}],
)
def test_out_of_range_numbers_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        GEMTrainingConfig(**bad)


def test_pair_mix_is_checked_at_load():
    GEMTrainingConfig(pair_mix={"ict": 2, "crop": 1.0})
    with pytest.raises(ValueError, match="unknown pair sources"):
        GEMTrainingConfig(pair_mix={"ict": 1.0, "bm25": 1.0})
    with pytest.raises(ValueError, match="positive numbers"):
        GEMTrainingConfig(pair_mix={"ict": 0.0})
    with pytest.raises(TypeError, match="pair_mix"):
        GEMTrainingConfig(pair_mix=["ict"])
    with pytest.raises(ValueError, match="matryoshka_dims"):
        GEMTrainingConfig(matryoshka_dims=[0])
    with pytest.raises(ValueError, match="distill_temperature"):
        GEMTrainingConfig(distill_temperature=0.0)


def test_inert_special_only_settings_are_named():
    with pytest.warns(UserWarning, match="contrastive_alpha=0.9 < 1 is inert"):
        GEMTrainingConfig(tuning="lora", adapter_scope="special_only", contrastive_alpha=0.9)
    with pytest.warns(UserWarning, match="gem_prob=0.2 is replaced by 1.0"):
        GEMTrainingConfig(tuning="lora", adapter_scope="special_only", gem_prob=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GEMTrainingConfig(adapter_scope="special_only", gem_prob=1.0, contrastive_alpha=1.0)
        GEMTrainingConfig(adapter_scope="special_only", skip_frozen=False, gem_prob=0.2)


RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_is_a_valid_config(recipe) -> None:
    cfg = GEMTrainingConfig.from_yaml(recipe)
    assert cfg.model and cfg.output_dir.startswith("runs/")
    if "distilled" in recipe.name:  # the recipe of the labelled built-in says what it is
        assert cfg.distill_teacher and cfg.distill_cosine_weight > 0
