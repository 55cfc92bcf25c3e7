"""int8 that is faster and keeps accuracy: the int8 step of the export, as a room of its own.

The face: ``build_int8(Int8Request(...), Int8Options(...)) -> Int8Result``, ``render_report`` (the manifest's
int8 record as text) and ``int8_form`` (the graph form int8 kernels cover). Inside, one module a step:

- ``options``: ``Int8Options`` and the calibration vocabulary (``CALIBRATION_METHODS``, ``CALIBRATION_CHOICES``);
- ``request``: ``Int8Request`` and the workspace the steps share; ``build``: the orchestrator and ``Int8Result``;
- ``twin`` (pre-processing, ``int8_form``, scale folding), ``calibrate``, ``quantize`` (QDQ), ``per_channel``,
  ``qdq_float`` (nodes kept in float), ``bias_correction``;
- ``steps`` (calibrate → sensitivity → forms with layers in float), ``stems``, ``sensitivity``, ``agreement``
  (with fp32, in ``runtime.compare``'s measures), ``speed`` (the speed gate), ``decide``; ``report``.

``Int8Options`` is standard library only; the rest (onnx, onnxruntime's quantizer) is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .options import CALIBRATION_CHOICES, CALIBRATION_METHODS, Int8Options

__all__ = [
    "build_int8",
    "Int8Request",
    "Int8Options",
    "Int8Result",
    "render_report",
    "int8_form",
    "CALIBRATION_METHODS",
    "CALIBRATION_CHOICES",
]


def __getattr__(name: str) -> Any:
    # plain imports, not import_module: the face stays light for the CLI, which needs only Int8Options
    if name in ("build_int8", "Int8Result"):
        from . import build

        return getattr(build, name)
    if name == "Int8Request":
        from .request import Int8Request

        return Int8Request
    if name == "render_report":
        from .report import render_report

        return render_report
    if name == "int8_form":
        from .twin import int8_form

        return int8_form
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .build import Int8Result, build_int8
    from .report import render_report
    from .request import Int8Request
    from .twin import int8_form
