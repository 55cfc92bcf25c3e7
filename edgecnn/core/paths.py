"""The path rules (standard library only): what counts as a file name, and what stays inside a folder."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ArtifactError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar", ".safetensors")


def is_checkpoint_path(weights: str | os.PathLike) -> bool:
    """Whether a ``weights`` value names a file rather than a published checkpoint.

    Published names (``imagenet``, ``imagenet1k_v1``) never hold a dot or a path separator, so anything that
    does is a file: a mistyped ``model.pth.tar`` is then reported as a missing file, not an unknown name.
    """
    if isinstance(weights, os.PathLike):
        return True
    text = str(weights)
    return any(c in text for c in "./\\") or text.endswith(CHECKPOINT_SUFFIXES) or os.path.exists(text)


def inside(folder: str | os.PathLike, relative: str, what: str = "file") -> Path:
    """``folder / relative``, refused when ``relative`` is absolute or escapes ``folder`` (``..``, symlinks)."""
    root = Path(folder).resolve()
    if os.path.isabs(relative):
        raise ArtifactError(f"{what} '{relative}' is an absolute path; only files inside {root} are read")
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ArtifactError(f"{what} '{relative}' points outside {root}; only files inside it are read")
    return target
