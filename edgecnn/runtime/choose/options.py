"""What ``choose`` is asked to compare, checked when made: one frozen ``ChooseOptions``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import InputError
from ..bench.options import check_counts
from ..providers import parse_entries

#: The formats a row can be of (``coreml``: an ``.mlpackage``, converted here and run on macOS only).
FORMATS = ("onnx", "tflite", "pte", "coreml")
PRECISIONS = ("fp32", "fp16", "int8")

# A row's status. "not judged": int8 of random weights ran and its figures are shown, but an untrained model's
# near-tied class scores make its agreement no verdict (``runtime.compare``), so it is neither verified nor failed.
VERIFIED, NOT_JUDGED, FAILED, NOT_RUNNABLE = "verified", "not judged", "failed", "not runnable here"
STATUSES = (VERIFIED, NOT_JUDGED, FAILED, NOT_RUNNABLE)


@dataclass(frozen=True)
class ChooseOptions:
    """The options of ``choose``.

    Attributes:
        formats: the formats to compare (``FORMATS``); ``None``: every format in the folder.
        precisions: the precisions to compare; ``None``: every precision in the folder.
        eps: provider entries the ``.onnx`` rows run on (``--ep`` syntax: ``"cpu,openvino"``, or a sequence);
            ``None``: ``cpu``, plus ``openvino`` where it can run here. A ``.tflite``/``.pte`` row runs on its own
            runtime whatever these say.
        data: a labelled folder or CSV (``runtime.evaluate``'s forms): each row's accuracy and its paired
            bootstrap interval against fp32. ``None``: agreement with fp32 on the golden photos stands in.
        labels_from: ``"card"`` or ``"folder"`` (``runtime.evaluate``).
        margin: points of top-1 (segmentation: pixel accuracy) a recommendation may lose against fp32.
        threads: intra-op threads for every runtime (``None``: each runtime's default).
        seconds: timed work per row in the one interleaved benchmark.
        warmup: untimed runs per row before timing.
        rounds: rounds the timed runs are interleaved in.
        batch: images per evaluation step.
    """

    formats: tuple | None = None
    precisions: tuple | None = None
    eps: tuple | None = None
    data: Path | None = None
    labels_from: str = "card"
    margin: float = 1.0
    threads: int | None = None
    seconds: float = 1.0
    warmup: int = 5
    rounds: int = 5
    batch: int = 32

    def __post_init__(self) -> None:
        # normalised once, so that two equal requests compare equal
        object.__setattr__(self, "formats", _names(self.formats, FORMATS, "format"))
        object.__setattr__(self, "precisions", _names(self.precisions, PRECISIONS, "precision"))
        if self.eps is not None:
            object.__setattr__(self, "eps", tuple(tuple(e) for e in parse_entries(self.eps)))
        if self.data is not None:
            object.__setattr__(self, "data", Path(self.data))
        if self.labels_from not in ("card", "folder"):
            raise InputError(f"labels_from must be 'card' or 'folder', got {self.labels_from!r}")
        margin = self.margin
        if not isinstance(margin, numbers.Real) or isinstance(margin, bool) or not math.isfinite(margin) or margin < 0:
            raise InputError(f"margin must be a finite number of points, 0 or more, got {margin!r}")
        check_counts(seconds=self.seconds, warmup=self.warmup, threads=self.threads)
        for name in ("rounds", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be a whole number, 1 or more, got {value!r}")


def _names(value: str | Sequence | None, known: tuple, what: str) -> tuple | None:
    """``"onnx,tflite"`` or a sequence as a tuple of known lower-case names; ``None`` stays ``None`` (all)."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(str(v).strip().lower() for v in items if str(v).strip()))
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InputError(
            f"unknown {what} {unknown[0] if unknown else '(none given)'!r}; choose from {', '.join(known)}"
        )
    return names


def default_eps() -> tuple:
    """``cpu``, and ``openvino`` where either of its backends offers a device here (``runtime.openvino``)."""
    from .. import openvino

    return (("cpu",),) + ((("openvino",),) if openvino.backend() is not None else ())
