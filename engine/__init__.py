"""prunescope engine: items, models, pruning, the evaluation protocol, the run store and the study runner.

Importing `engine` (and `engine.runfolder`, `engine.errors`, `engine.safe_text`) does not import
torch: `stats` and `tui` rely on that.
"""

__version__ = "0.1.0"
