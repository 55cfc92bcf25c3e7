"""``compare`` from a model name: export what is missing into compare's own folder, then the table
(``runtime.choose``: parity on golden outputs, accuracy, one interleaved timing run, a recommendation).

Where the files go: a model name is exported into ``exported/compare/NAME`` (or ``--out``), a folder that
``compare`` owns. A later ``compare`` of the same model with the same export options reuses it; one that asks for
more formats or precisions re-exports the union there, through the export's staged, locked swap (the old files stay
until the new ones all passed; a file that no edgecnn run wrote blocks the swap, whatever the flags). A folder
written by ``export`` itself is never replaced here without ``--force``: point ``compare`` at it instead
(``edgecnn compare exported/NAME``), which reads it and writes nothing into it. Folders are read as they are,
on the device install too (no torch): ``.pte`` rows then say why they do not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..convert.int8.options import Int8Options
from ..core.errors import InputError
from ..core.owned import writer_of
from .options import ExportOptions

WRITER = "compare"  # the listing's writer of compare's own folders: compare may re-export them
DEFAULT_ROOT = Path("exported") / "compare"
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class CompareRun:
    """What ``compare`` did: the folder it measured, whether it exported (and what), and the table."""

    folder: Path
    exported: bool
    choice: object  # runtime.choose.ChooseResult
    export_warnings: tuple = ()


def is_artifact_folder(target: str | Path) -> bool:
    """An export folder (``manifest.json``) or a bundle (``bundle.json``): compare reads it, writes nothing."""
    path = Path(target)
    return path.is_dir() and ((path / "manifest.json").is_file() or (path / "bundle.json").is_file())


def export_options_for(options: ExportOptions, formats, precisions, eps=None) -> ExportOptions:
    """``options`` asking for ``formats`` (None: every format this install can make) and ``precisions``; the int8
    .onnx made for each runtime its rows run on (``eps``; None: compare's default, OpenVINO where it runs here),
    so that OpenVINO is offered its own int8 form where its choice differs from onnxruntime's."""
    from ..convert.targets.request import formats as installable
    from ..runtime.choose.options import default_eps

    precisions = tuple(precisions or ("fp32", "int8"))
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or "fp32" not in precisions:
        raise InputError(f"--precisions takes fp32 (always) and fp16, int8; got {','.join(precisions)}")
    wanted = formats or tuple(f for f, reason in installable().items() if reason is None)
    int8 = (options.int8 or Int8Options()) if "int8" in precisions else None
    runs_openvino = any("openvino" in entry for entry in (eps if eps is not None else default_eps()))
    if int8 is not None and "onnx" in wanted and runs_openvino and int8.speed:
        int8 = replace(int8, runtimes=tuple(dict.fromkeys([*int8.runtimes, "openvino"])))
    return options.replace(formats=wanted, fp16="fp16" in precisions, int8=int8)


def compare(
    target: str | Path,
    choose_options=None,
    export_options: ExportOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CompareRun:
    """The table of ``target`` (a model name, an export folder or a bundle) and its recommendation.

    Args:
        target: a registry name (exported first, see the module docstring) or a folder of exported files.
        choose_options: ``runtime.choose.ChooseOptions`` (formats, precisions, providers, data, margin, timing).
        export_options: for a model name, the export's options (weights, calibration, size …); formats and
            precisions come from ``choose_options``.
        out_dir: where a model name is exported (default ``exported/compare/NAME``).
        force: replace a folder another edgecnn command wrote there.

    Raises:
        InputError: an unknown model that is not a folder either, export options given with a folder, a folder
            that is someone else's export.
    """
    from ..runtime.choose import ChooseOptions, choose

    choose_options = choose_options or ChooseOptions()
    if is_artifact_folder(target):
        if export_options is not None or out_dir is not None:
            raise InputError(f"{target} is an exported folder: export options and --out apply to a model name only")
        return CompareRun(Path(target), False, choose(Path(target), choose_options, progress=progress))
    folder, exported, warnings = _exported(str(target), choose_options, export_options, out_dir, force, progress)
    return CompareRun(folder, exported, choose(folder, choose_options, progress=progress), warnings)


def _exported(name: str, choose_options, export_options, out_dir, force: bool, progress) -> tuple:
    """The folder of ``name``'s files, exported now unless an equal export is already there."""
    from ..models.registry import get_spec
    from .compose import export

    if Path(name).exists():
        raise InputError(f"{name}: not an export folder (no manifest.json or bundle.json) and not a model name")
    spec = get_spec(name)
    folder = Path(out_dir) if out_dir is not None else DEFAULT_ROOT / spec.name
    asked = export_options_for(
        export_options or ExportOptions(), choose_options.formats, choose_options.precisions, choose_options.eps
    )
    previous = _previous_options(folder)
    if previous is not None:
        asked = _union(asked, previous)
        if _same(asked, previous):
            return folder, False, ()
    if folder.is_dir() and any(folder.iterdir()) and writer_of(folder) != WRITER and not force:
        raise InputError(
            f"{folder} holds files compare did not write; compare that folder itself (edgecnn compare {folder}), "
            "or pass --out elsewhere, or --force to replace what edgecnn wrote there"
        )
    result = export(
        spec.name,
        folder,
        asked.replace(force=True),
        command=f"edgecnn compare {name}",
        progress=progress,
        writer=WRITER,
    )
    return folder, True, tuple(result.warnings)


def _previous_options(folder: Path) -> dict | None:
    """The options block of the export already in ``folder`` (None: none, or not readable as one)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        return manifest["options"] if isinstance(manifest.get("options"), dict) else None
    except (OSError, ValueError, AttributeError, KeyError):
        return None


def _union(asked: ExportOptions, previous: dict) -> ExportOptions:
    """``asked`` keeping the formats and precisions the folder already has (a re-export adds, never drops)."""
    formats = tuple(dict.fromkeys([*asked.formats, *previous.get("formats", [])]))
    fp16 = asked.fp16 or bool(previous.get("fp16"))
    try:
        before = Int8Options(**previous["int8"]) if isinstance(previous.get("int8"), dict) else None
    except (InputError, TypeError):  # an older manifest's int8 block: the asked options stand
        before = None
    int8 = asked.int8 or before
    if asked.int8 is not None and before is not None:  # the runtimes the folder's int8 files are for stay too
        int8 = replace(asked.int8, runtimes=tuple(dict.fromkeys([*asked.int8.runtimes, *before.runtimes])))
    try:
        return asked.replace(formats=formats, fp16=fp16, int8=int8)
    except (InputError, TypeError):  # a format this install cannot make, or an older manifest's int8 block
        return asked


def _same(asked: ExportOptions, previous: dict) -> bool:
    mine = {k: v for k, v in asked.to_dict().items() if k != "force"}
    theirs = {k: v for k, v in previous.items() if k != "force"}
    return mine == theirs
