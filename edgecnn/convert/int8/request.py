"""What ``build_int8`` works on (``Int8Request``), and the working state its steps share (``Workspace``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .agreement import Agreement, agreement, run_model
from .options import Int8Options

SELECTION_MAX = 48  # most calibration images held out to judge agreement


@dataclass(frozen=True)
class Int8Request:
    """The data ``build_int8`` turns into an int8 artifact (how is ``Int8Options``).

    Attributes:
        fp32_path: the fp32 ONNX file.
        dst: where the int8 file goes (its folder also holds the scratch work, removed at the end).
        arrays: preprocessed calibration images (N×C×H×W float32); a held-out slice judges agreement.
        task: ``classification`` or ``segmentation`` (picks the agreement measure).
        input_name: the graph's input.
        batch: the graph's fixed batch size, or ``None`` for a dynamic batch axis.
        input_size: ``(H, W)`` the speed gate times at (``None``: the file's).
        judge_accuracy: False for untrained (random) weights: their outputs are near-ties, so agreement says
            nothing about a trained model; it is reported, no fallback is made, and auto decides on speed.
        target: agreement thresholds (default ``build.DEFAULT_TARGETS[task]``), e.g. ``{"top1_agreement": 0.98}``
            (the record's former names, ``top1``, ``pixel``, ``miou``, are accepted too).
        progress: called with a short description of each sub-step.
        stamp: called as ``stamp(model, result)`` on the chosen graph just before it is written to ``dst``, with
            the ``Int8Result`` that says how it was made: the caller's card goes in with the file's first write.
    """

    fp32_path: Path
    dst: Path
    arrays: np.ndarray
    task: str = "classification"
    input_name: str = "input"
    batch: int | None = None
    input_size: tuple | None = None
    judge_accuracy: bool = True
    target: dict | None = None
    progress: Callable[[str], None] | None = None
    stamp: Callable[[object, object], None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fp32_path", Path(self.fp32_path))
        object.__setattr__(self, "dst", Path(self.dst))


@dataclass
class Workspace:
    """The state the steps share: the request, the options, the scratch folder, the twin that is quantized, the
    images split into calibration and held-out selection, and fp32's outputs on the selection."""

    request: Int8Request
    options: Int8Options
    work: Path
    twin: Path
    rewrites: dict  # int8_form's counts: {"HardSwish": n, "HardSigmoid": m}
    calib: np.ndarray
    select: np.ndarray
    reference: np.ndarray
    notes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def say(self, message: str) -> None:
        if self.request.progress:
            self.request.progress(message)

    def run(self, path: Path, arrays: np.ndarray) -> np.ndarray:
        """The first output of ``path`` on ``arrays``."""
        return run_model(path, arrays, input_name=self.request.input_name, batch=self.request.batch)[0]

    def evaluate(self, path: Path) -> Agreement:
        """Agreement of ``path`` with fp32 on the held-out selection."""
        return agreement(self.reference, self.run(path, self.select), self.request.task)


def split_images(arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibration part and held-out selection slice (a quarter, at most SELECTION_MAX; all of it when few), by
    the one held-out rule (``convert.calibration.split_held_out``, which the export's parity split uses too)."""
    from ..calibration import split_held_out

    return split_held_out(arrays, most=SELECTION_MAX, share=4)
