"""gemlm: one causal LM that both embeds and generates (GEM, arXiv 2506.04344)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["GEMConfig", "GEMModel"]


def __getattr__(name: str):  # lazy: `import gemlm` stays cheap for the CLI's --help
    if name == "GEMModel":
        from .model import GEMModel

        return GEMModel
    if name == "GEMConfig":
        from .config import GEMConfig

        return GEMConfig
    raise AttributeError(name)
