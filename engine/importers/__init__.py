"""Importing other harnesses' per-sample logs as run folders (`prunescope import`), torch-free.

- `records`: an item's logged MC request and generation → items.jsonl and outcome lines;
- `folder`: writing the imported runs into a study folder (the contract's writer);
- `lm_eval`: lm-evaluation-harness (0.4.3 or later) output folders, task pairs by format;
- `inspect_logs`: Inspect AI eval logs;
- `commands`: the `prunescope import` subcommands.
"""
