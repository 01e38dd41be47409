"""What kind of GEM model a folder holds (``adapter_scope``), as a type with the behaviour that
differs between the kinds. Torch-free: ``gemlm.config`` and the training config import it.

>>> AdapterScope.parse("special_only").gated, AdapterScope.ALL.mergeable
(True, True)
>>> AdapterScope.SPECIAL_ONLY == "special_only"  # a str: JSON and YAML keep the plain name
True
>>> AdapterScope.parse("some")
Traceback (most recent call last):
ValueError: adapter_scope must be one of ['all', 'special_only'], got 'some'
"""

from __future__ import annotations

from enum import StrEnum


class AdapterScope(StrEnum):
    """Where the trained weights act: every position, or only the GEM tokens' positions."""

    ALL = "all"  # LoRA (merged at save) or full tuning: one plain Hugging Face model
    SPECIAL_ONLY = "special_only"  # a LoRA gated to the GEM positions, saved apart from its base

    def __repr__(self) -> str:  # shown as the plain name in config tables
        return repr(self.value)

    @classmethod
    def parse(cls, value: object) -> AdapterScope:
        """The one validation of a scope read from a config, a recipe or a request."""
        try:
            return cls(value)
        except ValueError:
            names = [s.value for s in cls]
            raise ValueError(f"adapter_scope must be one of {names}, got {value!r}") from None

    @property
    def gated(self) -> bool:
        """Embeds with the gated forward (text as the base model, then the GEM tokens); every
        text position, and so generation, is the base model's bit for bit."""
        return self is AdapterScope.SPECIAL_ONLY

    @property
    def mergeable(self) -> bool:
        """A LoRA of this kind merges into the weights (one plain causal LM when saved)."""
        return self is AdapterScope.ALL

    @property
    def exportable(self) -> bool:
        """Has a sentence-transformers (merged-weights, last-token pooling) export."""
        return self is AdapterScope.ALL

    @property
    def saved_as_adapter(self) -> bool:
        """Saved as peft files + a config naming its base model, not as full weights."""
        return self is AdapterScope.SPECIAL_ONLY

    @property
    def needs_lora(self) -> bool:
        """Only a LoRA can be gated: full tuning changes every position."""
        return self is AdapterScope.SPECIAL_ONLY
