"""Items: construction, validation, local and Hugging Face loaders, bundled set, subsetting (torch-free).

Public API: `load_items(spec)` (what the study runner calls), `make_item(...)`, `content_hash(item)`,
`validate_items(rows, where)`, `read_item_file(path)`, `subset_per_language(items, n, seed)`.
"""

from engine.items.build import content_hash, make_item, make_uid
from engine.items.loader import BUNDLED, load_items
from engine.items.local import read_item_file
from engine.items.subset import subset_per_language
from engine.items.validate import validate_items

__all__ = [
    "BUNDLED",
    "content_hash",
    "load_items",
    "make_item",
    "make_uid",
    "read_item_file",
    "subset_per_language",
    "validate_items",
]
