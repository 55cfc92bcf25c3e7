"""The export's check of a Core ML file: structural, because Core ML predicts on macOS only.

``check_target`` reopens every other file on its own runtime and judges its outputs against PyTorch; an
``.mlpackage`` cannot be run on Linux, so here it is read back (``runtime.coreml.inspect``: I/O names, shapes and
types, ML program operators, weight precision, specification version, the card) and held to the card it was
written with. Its parity record says so: not judged, no samples, the note ``NOT_RUN`` — so every table that lists
it shows it as converted, not verified. On macOS with coremltools' Core ML binding the file runs like the others
(``open_runner``), and ``check_target``'s ordinary parity applies; ``runnable_here`` says which.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..core.artifact import Artifact
from ..core.card import ModelCard
from ..core.errors import ArtifactError, EdgeCNNError
from ..core.files import sha256_file, size_bytes
from ..runtime.compare import ParityReport
from ..runtime.coreml import inspect, predictor_api, structural_problems
from .steps import Run

NOT_RUN = "converted, not run: Core ML predicts on macOS only"
#: what the manifest keeps of the structure (the card is the manifest's own; sizes are the artifact's)
_KEPT = ("model_type", "spec_version", "minimum_os", "opsets", "inputs", "outputs", "ops", "compute_ops", "weights")


def package_digest(path: Path) -> str:
    """SHA-256 of a package folder: every file's relative path and its own SHA-256, in path order, so the same
    files give the same digest wherever they lie."""
    outer = hashlib.sha256()
    for item in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        outer.update(f"{item.relative_to(path).as_posix()}\0{sha256_file(item)}\n".encode())
    return outer.hexdigest()


def size_and_digest(path: Path) -> tuple[int, str]:
    """Bytes and SHA-256 of an artifact, a file or a package folder (``package_digest``) alike."""
    path = Path(path)
    return size_bytes(path), package_digest(path) if path.is_dir() else sha256_file(path)


def not_run_report(precision: str, task: str) -> ParityReport:
    """The parity record of a file that was not run: not judged (it cannot fail the export), no figures."""
    return ParityReport(True, precision, task, 0, None, None, None, None, judged=False, note=NOT_RUN)


def runnable_here() -> bool:
    """Whether Core ML can predict in this process (macOS, and coremltools with its Core ML binding)."""
    try:
        predictor_api("probe")
    except EdgeCNNError:  # not macOS, coremltools missing, or without its Core ML binding
        return False
    return True


def check_coreml(made, card: ModelCard, run: Run) -> Artifact:
    """Read the package back and hold it to the card it was written with; an ``Artifact`` whose parity says
    "converted, not run".

    Raises:
        ArtifactError: the package disagrees with its card (names, shapes, types, classes, precision, the card).
    """
    path, precision = Path(made.path), made.precision
    with run.step(f"check coreml {precision} (structure)"):
        found = inspect(path)
        carried = ModelCard.from_metadata(found["card"], path.name)
        problems = structural_problems(found)
        if carried is not None and (carried.model, carried.precision) != (card.model, precision):
            problems.append(f"its card is for {carried.model} {carried.precision}, not {card.model} {precision}")
        if problems:
            raise ArtifactError(f"{path.name}: " + "; ".join(problems) + "; export it again")
    run.warnings.append(f"{path.name}: {NOT_RUN}")
    runtime = {"runtime": "coreml", "run": False, "structure": {k: found[k] for k in _KEPT}}
    if made.int8:
        runtime["int8"] = made.int8
    report = not_run_report(precision, card.task)
    digest = package_digest(path)
    return Artifact(
        path.name, precision, found["size_bytes"], digest, report, made.notes, format="coreml", runtime=runtime
    )
