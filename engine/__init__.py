"""prunescope engine: items, models, pruning, the evaluation protocol, the run store and the study runner.

Importing `engine` (and `engine.runfolder`, `engine.errors`, `engine.safe_text`) does not import
torch: `stats` and `tui` rely on that.

The version has one source, `version` in pyproject.toml: `engine.__version__` reads it from the
installed package's metadata when first asked for (importlib.metadata costs ~30 ms to import, so
importing `engine` does not pay it).
"""


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prunescope")
    except PackageNotFoundError:  # a source tree that was never installed (`pip install -e .` fixes it)
        return "0+unknown"
