"""prunescope statistics: paired tests, effect sizes, multiple comparisons, tables and figures.

Reads run folders (never imports torch or transformers). Importing `stats` is cheap: the modules
(`stats.load`, `stats.mcnemar`, `stats.intervals`, ...) are imported where they are used.
"""
