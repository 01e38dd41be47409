"""The ``gemlm`` command line (typer): one thin module per concern, no import circle.

``options`` holds what commands share (option types, consoles, the one error exit, ``load``);
``models``, ``embed``, ``train``, ``serve``, ``eval`` and ``rag`` hold the commands and import
only ``options``; ``main`` assembles the app. Light at import: models load inside commands.
"""

from __future__ import annotations

from .main import app, main

__all__ = ["app", "main"]
