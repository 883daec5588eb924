"""Screens of the prunescope TUI: overview, items, item, significance, run info, and dialogs."""
