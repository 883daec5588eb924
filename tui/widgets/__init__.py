"""Widgets of the prunescope TUI."""
