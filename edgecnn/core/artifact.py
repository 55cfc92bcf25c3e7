"""What an export folder holds, as records every room can read (standard library only): one ``Artifact`` per file
in ``manifest.json``, and the manifest reader. The pipeline writes them; deploy (embed, mobile) and the tools
read or extend them without importing the pipeline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import ArtifactError

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
    """The ``manifest.json`` of an export folder; a missing or broken one is an ``ArtifactError`` saying so."""
    path = Path(out_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"no {MANIFEST} in '{out_dir}'; is it an edgecnn export folder?") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc.msg}); export again with --force") from None
