"""The run-folder contract, torch-free: what the engine writes and what `stats` and the TUI read.

A study folder holds run folders; a run folder holds `manifest.json` (what ran: model, condition,
item set, protocol, versions), `items.jsonl` (the items, one JSON object a line) and
`outcomes.jsonl` (one line per evaluated item), plus `outcomes.index.arrow`, a columnar index of
the outcome lines. JSONL is the source of truth; everything else can be rebuilt from it.

- `labels`: categories, transition codes, condition labels and N:M patterns (one name per concept);
- `records`: typed records of items, outcomes and the manifest (checked against `engine/schema`);
- `reader`: file names and the one tolerant reader (torn tails never parsed, corrupt lines named);
- `index`: the per-run Arrow index (how to add a column is in its docstring);
- `pairing`: the one pairing rule (which run is each run's reference, which lines pair);
- `runs`: run folders opened for reading, as `stats` and the TUI both do.

Writing (atomic files, the append-only outcome writer, schema validation) is `engine.runfolder`.
"""
