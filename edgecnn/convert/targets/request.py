"""What every target exporter takes and gives back, and the table of formats."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.errors import InputError

#: Every format ``export --format`` knows, in the order they are made ("onnx" is the pipeline's own).
FORMATS = ("onnx", "tflite", "pte", "coreml")
#: The file suffix of each format.
SUFFIXES = {"onnx": ".onnx", "tflite": ".tflite", "pte": ".pte", "coreml": ".mlpackage"}
#: What each non-ONNX format needs installed: (module to find, the extra that brings it).
_NEEDS = {
    "tflite": (("litert_torch", "ai_edge_litert"), "litert-export"),
    "pte": (("executorch", "torchao"), "executorch"),
    "coreml": (("coremltools",), "coreml"),
}


@dataclass(frozen=True)
class TargetRequest:
    """One artifact to make.

    Attributes:
        model: the eval-mode ``torch.nn.Module`` (the one the ONNX file was traced from).
        example: one input, ``1×C×H×W`` float32 (its shape is the file's static shape).
        path: the file to write.
        precision: ``"fp32"``, ``"fp16"`` (LiteRT: fp16 weights; Core ML: fp16 compute) or ``"int8"`` (Core ML:
            int8 weights only, activations float).
        metadata: the card as metadata (``ModelCard.to_metadata()``), written into the file.
        calibration: ``N×C×H×W`` float32, preprocessed exactly as the model's inputs (int8 only).
        quantized_io: int8 only: the file takes and returns int8 tensors (scale and zero point in the file)
            instead of float32.
        recipe: int8 only: how to keep accuracy (``pt2e.Recipe``); ``None``: ``pt2e`` chooses.
        trained: the weights were given (a checkpoint or a published set): accuracy measures apply; random
            weights have no accuracy to keep.
    """

    model: object
    example: np.ndarray
    path: Path
    precision: str = "fp32"
    metadata: dict = field(default_factory=dict)
    calibration: np.ndarray | None = None
    quantized_io: bool = False
    recipe: object | None = None
    trained: bool = False


@dataclass(frozen=True)
class TargetResult:
    """What an exporter wrote.

    Attributes:
        path: the file.
        format: ``"tflite"``, ``"pte"`` or ``"coreml"`` (``path`` is then an ``.mlpackage`` folder).
        precision: as asked.
        delegation: what the runtime's delegate takes, read from the lowered program (``partitions``,
            ``delegated_nodes``, ``other_nodes``, ``other_ops``: op name → count of what runs outside it).
        notes: one-line facts for the manifest.
        int8: the int8 record (recipe, calibration count, what was kept in float), ``{}`` otherwise.
    """

    path: Path
    format: str
    precision: str
    delegation: dict = field(default_factory=dict)
    notes: tuple = ()
    int8: dict = field(default_factory=dict)


def formats() -> dict[str, str | None]:
    """Each format → ``None`` when this install can make it, else the one-line reason (what to install)."""
    out: dict[str, str | None] = {"onnx": None}
    for fmt, (modules, extra) in _NEEDS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        out[fmt] = f'needs {", ".join(missing)}: pip install "edgecnn[{extra}]"' if missing else None
    return out


def export_target(fmt: str, request: TargetRequest) -> TargetResult:
    """Write ``request`` in format ``fmt`` (``"tflite"``, ``"pte"`` or ``"coreml"``).

    Raises:
        InputError: an unknown format, or one this install cannot make (what to install).
        ArtifactError: the converter cannot take the model (one line: which operator and why).
    """
    reason = formats().get(fmt, f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if reason:
        raise InputError(f"cannot export .{fmt}: {reason}")
    if fmt == "tflite":
        from .tflite import export
    elif fmt == "pte":
        from .pte import export
    elif fmt == "coreml":
        from .coreml import export
    else:
        raise InputError(f"format {fmt!r} is written by the ONNX pipeline, not by convert.targets")
    return export(request)
