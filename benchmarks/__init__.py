"""gemlm's benchmarks: one module per measurement, run from the repository root as

    python -m benchmarks.<name> [--help]

They share :mod:`benchmarks._common` (timing, result files, data loaders). A package, not
loose scripts, so that the shared module imports the same way in ``python -m`` and under
pytest (which imports every file here for its doctests), with no ``sys.path`` edits.
"""
