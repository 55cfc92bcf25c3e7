"""What an export folder holds, as records every room can read (standard library only): one ``Artifact`` per file
in ``manifest.json``, and the manifest reader. The pipeline writes them; deploy (embed, mobile) and the tools
read or extend them without importing the pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """One exported file, as ``manifest.json`` lists it."""

    file: str
    precision: str
    size_bytes: int
    sha256: str
    parity: dict
    notes: tuple = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def read_manifest(out_dir: str | Path) -> dict:
    """The ``manifest.json`` of an export folder, its types and keys checked (``core.documents``); a missing or
    malformed one is an ``ArtifactError`` naming the file and the key."""
    from .documents import read_export_manifest

    return read_export_manifest(out_dir)
