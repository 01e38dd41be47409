"""The model kind as a type (gemlm/kind.py) and the torch-free config that holds it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from gemlm.config import GEMConfig
from gemlm.kind import AdapterScope
from gemlm.training.config import GEMTrainingConfig


def test_the_kinds_differ_in_behaviour_not_strings() -> None:
    rows = {s: (s.gated, s.mergeable, s.exportable, s.saved_as_adapter) for s in AdapterScope}
    assert rows == {
        AdapterScope.ALL: (False, True, True, False),
        AdapterScope.SPECIAL_ONLY: (True, False, False, True),
    }


@pytest.mark.parametrize("make", [lambda v: GEMConfig(adapter_scope=v, base_model="b"),
                                  lambda v: GEMTrainingConfig(adapter_scope=v)])  # fmt: skip
def test_scope_is_parsed_once_on_every_assignment(make) -> None:
    cfg = make("special_only")
    assert cfg.adapter_scope is AdapterScope.SPECIAL_ONLY
    cfg.adapter_scope = "all"  # code that assigns a plain name gets the type too
    assert cfg.adapter_scope is AdapterScope.ALL
    with pytest.raises(ValueError, match="adapter_scope must be one of"):
        cfg.adapter_scope = "gated"
    with pytest.raises(ValueError, match="adapter_scope must be one of"):
        make("everything")


def test_saved_configs_keep_the_plain_name(tmp_path) -> None:
    GEMConfig(adapter_scope="special_only", base_model="b").save(tmp_path)
    assert json.loads((tmp_path / "gemlm_config.json").read_text())["adapter_scope"] == (
        "special_only"
    )
    assert GEMConfig.load(tmp_path).adapter_scope is AdapterScope.SPECIAL_ONLY
    plain = GEMTrainingConfig(adapter_scope="special_only").to_dict()
    assert yaml.safe_load(yaml.safe_dump(plain))["adapter_scope"] == "special_only"


def test_light_modules_import_without_torch() -> None:
    code = (
        "import sys, gemlm.config, gemlm.kind, gemlm.sampling, gemlm.sources; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
