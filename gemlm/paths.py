"""Where the shared evaluation/training data lives (never inside the repo)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GEMLM_DATA_DIR"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """``override``, else ``$GEMLM_DATA_DIR``, else ``../shared/data`` beside the checkout."""
    if override is not None:
        path = Path(override).expanduser()
    elif os.environ.get(DATA_ENV):
        path = Path(os.environ[DATA_ENV]).expanduser()
    else:
        candidates = [
            Path.cwd() / "../shared/data",
            Path(__file__).resolve().parents[1] / "../shared/data",
        ]
        path = next((c for c in candidates if c.is_dir()), candidates[0])
    if not path.is_dir():
        raise FileNotFoundError(f"data directory not found: {path} (set --data-dir or ${DATA_ENV})")
    return path.resolve()
