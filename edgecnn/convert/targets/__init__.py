"""Exporters for the runtimes beyond ONNX: LiteRT (``.tflite``), ExecuTorch (``.pte``) and Core ML (``.mlpackage``).

Each format is one module with one entry point, ``export(request) -> TargetResult``: ``tflite.py`` (litert-torch's
converter, its PT2E quantizer), ``pte.py`` (ExecuTorch's XNNPACK lowering, its quantizer) and ``coreml.py``
(coremltools' ML program; checked structurally, as Core ML predicts on macOS only). All start from ``torch.export`` of
the same eval-mode model the ONNX file was traced from; ``.tflite`` and ``.pte`` quantize through ``pt2e.py`` on the
same calibration arrays as the ONNX int8 (the model's own preprocessing), Core ML quantizes weights only, without
calibration. ``export_target`` picks the module; ``formats()`` says which of them this install can make, and why not.
"""

from __future__ import annotations

from .request import FORMATS, SUFFIXES, TargetRequest, TargetResult, export_target, formats

__all__ = ["FORMATS", "SUFFIXES", "TargetRequest", "TargetResult", "export_target", "formats"]
