"""Evaluation: mteb tasks read from local files, generation metrics, reports (``gemlm eval``)."""
