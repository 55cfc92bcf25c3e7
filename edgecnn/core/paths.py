"""The path rules (standard library only): what counts as a file name, what stays inside a folder, and what an
output may not land on (a command's own inputs)."""

from __future__ import annotations

import os
from collections.abc import Iterable
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


BUNDLE_FILE = "bundle.json"  # a folder holding it is a bundle: every file in it belongs to the bundle


def _identity(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of an existing file (symlinks followed), None when there is none."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _contains(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_folder_over_inputs(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """A command never replaces the folder its own input lives in (mobile over its export, web over its bundle).

    Unlike ``refuse_output_over_inputs`` (a report file), an output folder may lie inside an input folder (a web
    app in ``EXPORT/site``): only a folder that is, or holds, one of the inputs is refused. ``staged_output``
    checks it; a command calls it first where work (an npm install, an export) comes before.
    """
    from .errors import InputError

    out = os.path.realpath(out_dir)
    for item in inputs:
        if any(_contains(out, p) for p in {os.path.abspath(item), os.path.realpath(item)}):
            raise InputError(
                f"the output folder '{out}' holds this command's input '{item}'; write to another folder (--out DIR)"
            )


def refuse_output_over_inputs(
    output: str | os.PathLike, inputs: Iterable[str | os.PathLike], flag: str = "output"
) -> None:
    """Refuse to write ``output`` where it would replace or join one of a command's own ``inputs``.

    The rule: an output is refused when, after resolving symlinks, it is one of the input files, or it is the
    same file as one (a hard link: equal ``st_dev``/``st_ino``), or it lies inside an input folder (a data
    folder's files are all inputs), or an input lies inside it (an output folder holding the inputs). A model
    file inside a bundle (a folder with ``bundle.json``) brings the whole bundle folder. ``--force`` does not
    change this: it replaces earlier outputs, never inputs.

    Args:
        output: the file or folder the command would write.
        inputs: the files and folders it reads (paths that do not exist are ignored).
        flag: how the output was named (``--md``), for the message.

    Raises:
        InputError: ``output`` would land on an input; the message names both.
    """
    from .errors import InputError

    out = os.path.realpath(output)
    out_id = _identity(out)
    out_links = os.stat(out).st_nlink if out_id else 1
    for given in inputs:
        real = os.path.realpath(given)
        if os.path.isfile(real) and os.path.isfile(os.path.join(os.path.dirname(real), BUNDLE_FILE)):
            real, given = os.path.dirname(real), os.path.dirname(os.path.abspath(given))
        if out == real:
            where = f"would replace {given}"
        elif out_id is not None and _identity(real) == out_id:
            where = f"is a hard link to {given} and would replace it"
        elif os.path.isdir(real) and _contains(real, out):
            where = f"is inside {given}"
        elif os.path.isdir(out) and _contains(out, real):
            where = f"holds {given}"
        elif out_links > 1 and os.path.isdir(real) and _linked_inside(real, out_id):
            where = f"is a hard link to a file in {given} and would replace it"
        else:
            continue
        raise InputError(
            f"{flag} {output} {where}, an input of this command: no command writes over its inputs or "
            "into an input folder, with or without --force; write it elsewhere"
        )


def _linked_inside(folder: str, identity: tuple[int, int]) -> bool:
    """Whether a file under ``folder`` is the file ``identity`` (only asked for a file with several links)."""
    for root, _, names in os.walk(folder):
        if any(_identity(os.path.join(root, n)) == identity for n in names):
            return True
    return False
