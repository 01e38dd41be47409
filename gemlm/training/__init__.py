"""GEM post-training: data, collator, losses, trainer."""

from __future__ import annotations
