"""``python -m gemlm.cli`` (and ``accelerate launch -m gemlm.cli train``)."""

from __future__ import annotations

from .main import main

if __name__ == "__main__":  # pragma: no cover
    main()
