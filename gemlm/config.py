"""GEM settings saved beside the weights (``gemlm_config.json``) and restored on load.

Torch-free (tested in a fresh interpreter): reading a model's settings costs no model import.
Its embedding fields (special tokens, max_length, prompts, readout suffix) make the model's
:class:`~gemlm.embedding_format.EmbeddingFormat` (:attr:`GEMConfig.embedding_format`), derived
on every read, so the saved keys stay as they were.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .embedding_format import EmbeddingFormat
from .kind import AdapterScope
from .sources import GEM_CONFIG_NAME

READOUTS = ("mean", "concat")
MAX_SPECIAL_TOKENS = 10


def special_token_strings(k: int) -> list[str]:
    """The default names of the k GEM tokens.

    >>> special_token_strings(2)
    ['<|gem_0|>', '<|gem_1|>']
    """
    if not 1 <= k <= MAX_SPECIAL_TOKENS:
        raise ValueError(f"num_special_tokens must be in 1..{MAX_SPECIAL_TOKENS}, got {k}")
    return [f"<|gem_{i}|>" for i in range(k)]


@dataclass
class GEMConfig:
    num_special_tokens: int = 1
    special_tokens: list[str] = field(default_factory=list)
    readout: str = "mean"  # how the k special states become one vector: mean or concat
    normalize: bool = True  # L2-normalise the readout (the GEM embedding is unit-norm)
    max_length: int = 512  # tokens per embedded text, the k specials included
    prompts: dict[str, str] = field(default_factory=dict)  # name -> text prepended before encoding
    default_prompt_name: str | None = None
    readout_suffix: str = ""  # fixed text between the (truncated) text and the specials
    base_model: str | None = None  # where the weights came from (the base of a gated adapter)
    adapter_scope: AdapterScope = AdapterScope.ALL  # special_only: a gated LoRA on base_model
    # the teacher encoder(s) it learned from (distillation, or a teacher's mined negatives);
    # None: self-supervised. Shown by info(), gemlm eval's tables and a shipped model's card.
    distilled_from: str | None = None

    def __post_init__(self) -> None:
        if not self.special_tokens:
            self.special_tokens = special_token_strings(self.num_special_tokens)
        if len(self.special_tokens) != self.num_special_tokens:
            raise ValueError(
                f"num_special_tokens={self.num_special_tokens} but {len(self.special_tokens)} "
                "special_tokens were given"
            )
        special_token_strings(self.num_special_tokens)  # validates the range 1..10
        if self.adapter_scope.saved_as_adapter and not self.base_model:
            raise ValueError("adapter_scope='special_only' needs base_model (what it adapts)")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        self.embedding_format.validate()

    def __setattr__(self, name: str, value: object) -> None:
        if name == "adapter_scope":  # "special_only" from JSON or code -> AdapterScope, checked
            value = AdapterScope.parse(value)
        super().__setattr__(name, value)

    @property
    def embedding_format(self) -> EmbeddingFormat:
        """What the model embeds, from the saved fields (read afresh: the fields may be set)."""
        return EmbeddingFormat(
            special_tokens=tuple(self.special_tokens),
            max_length=self.max_length,
            prompts=dict(self.prompts),
            default_prompt_name=self.default_prompt_name,
            readout_suffix=self.readout_suffix,
        )

    def save(self, folder: str | Path) -> None:
        path = Path(folder) / GEM_CONFIG_NAME
        data = asdict(self)
        if data["distilled_from"] is None:  # written only when set: a self-supervised model's
            del data["distilled_from"]  # file stays readable by gemlm before the field existed
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> GEMConfig:
        path = Path(folder) / GEM_CONFIG_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}")
        return cls(**data)
