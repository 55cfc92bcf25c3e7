"""What an export folder holds, as records every room can read (standard library only): one ``Artifact`` per file
in ``manifest.json``, and the manifest reader. The pipeline writes them; deploy (embed, mobile) and the tools
read or extend them without importing the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

MANIFEST = "manifest.json"


class ParityRecord(Protocol):
    """What an artifact's parity is: ``edgecnn.runtime.compare.ParityReport`` (core imports no runtime, so
    the shape is named here)."""

    passed: bool
    judged: bool
    failures: tuple

    def to_dict(self) -> dict: ...


@dataclass(frozen=True)
class Artifact:
    """One exported file, as ``manifest.json`` lists it.

    Attributes:
        parity: the ``ParityReport`` of this file against its reference, carried as a record until the JSON
            boundary (``to_dict``: the manifest, ``--json``).
        reference: the file this one was judged against (an embedded-preprocessing twin names its float
            source); ``None``: PyTorch. Written into the parity block as ``reference``.
        format: ``"onnx"``, ``"tflite"`` or ``"pte"``.
        runtime: what really ran when the file was checked, for the formats beyond ONNX (the runner's ``info()``:
            runtime, threads, the delegate's partitions and the ops outside it); ``None`` for ONNX files.
    """

    file: str
    precision: str
    size_bytes: int
    sha256: str
    parity: ParityRecord
    notes: tuple = ()
    reference: str | None = None
    format: str = "onnx"
    runtime: dict | None = None

    @property
    def failed(self) -> bool:
        """A binding parity verdict that did not pass (an unjudged one, random-weight int8, never fails)."""
        return self.parity.judged and not self.parity.passed

    def to_dict(self) -> dict:
        parity = self.parity.to_dict()
        if self.reference is not None:
            parity["reference"] = self.reference
        return {
            "file": self.file,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "parity": parity,
            "notes": list(self.notes),
            "format": self.format,
            **({"runtime": self.runtime} if self.runtime is not None else {}),
        }


def read_manifest(out_dir: str | Path) -> dict:
    """The ``manifest.json`` of an export folder (version 1 or 2), its types and keys checked
    (``core.documents``); a missing or malformed one is an ``ArtifactError`` naming the file and the key."""
    from .documents import read_export_manifest

    return read_export_manifest(out_dir)
