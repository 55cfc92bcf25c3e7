"""One rule for the tools that write a table into a doc: replace the text between their two marker comments,
or append it (under ``heading``) the first time; written atomically."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgecnn.core.files import write_text_atomic  # noqa: E402


def write_section(doc: Path, text: str, start: str, end: str, heading: str = "") -> None:
    """``text`` must begin with ``start`` and end with ``end``."""
    old = doc.read_text() if doc.is_file() else ""
    if start in old and end in old:
        new = old[: old.index(start)] + text + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip() + "\n\n" + (f"{heading}\n\n" if heading else "") + text + "\n"
    write_text_atomic(doc, new)
