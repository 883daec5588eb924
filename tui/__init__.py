"""The prunescope terminal UI (Textual): `prunescope tui STUDY`. Torch-free; reads run folders and calls `stats`."""
