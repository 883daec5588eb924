"""Make untrusted text (model outputs, dataset strings) inert for terminals and Rich.

Everything printed by the CLI or shown in the TUI that comes from data goes through `inert`, and is
then rendered as plain `rich.text.Text` (never parsed as markup). `inert` turns every C0/C1 control
character (ESC, so CSI and OSC sequences too, BEL, DEL …), every bidirectional-formatting character
and the invisible characters that can hide text (zero-width space, word joiner, tag characters) into
a visible escape such as `\\x1b`, `\\u202e` or `\\U000e0041`, and bounds the length.
"""

from __future__ import annotations

import re
import unicodedata

# Bidi embedding/override/isolate controls, plus other zero-width format characters that can hide text:
# zero-width space, word joiner and invisible operators, the Mongolian vowel separator, and the tag
# characters (invisible ASCII look-alikes that can smuggle text). ZWJ and ZWNJ stay: Persian and Indic
# scripts and emoji sequences need them.
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE = "\u180e\u200b\u2060-\u2064\U000e0000-\U000e007f"
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + _BIDI + _INVISIBLE + "\u2028\u2029\ufeff]")
DEFAULT_MAX = 2000


def _escape(m: re.Match[str]) -> str:
    cp = ord(m.group())
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def inert(text: object, max_len: int | None = DEFAULT_MAX, newlines: bool = False) -> str:
    """A printable, inert version of `text`: controls and bidi characters escaped, length bounded.

    Newlines and tabs are escaped too unless `newlines` is true (then kept, for multi-line panes).
    """
    s = "" if text is None else str(text)
    if max_len is not None and len(s) > max_len:
        s = s[:max_len] + f"… [+{len(s) - max_len} chars]"
    if newlines:
        s = s.replace("\r\n", "\n")
        out = _UNSAFE.sub(_escape, s)
    else:
        out = _UNSAFE.sub(_escape, s.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r"))
    return "".join(c if unicodedata.category(c) != "Cs" else "\ufffd" for c in out)


def rich_text(text: object, max_len: int | None = DEFAULT_MAX, style: str = "", newlines: bool = False):
    """`inert(text)` as a `rich.text.Text`: markup in the data stays literal."""
    from rich.text import Text

    return Text(inert(text, max_len=max_len, newlines=newlines), style=style)
