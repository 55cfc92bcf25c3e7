"""The export pipeline: the one place where the steps are composed, and what the export owns.

    build model → reference inputs → torch.onnx → portable ops + onnxsim → metadata → parity
                                                 ├─ fp16 → parity
                                                 └─ int8 (``edgecnn.convert.int8``: calibrate, sensitivity +
                                                         fallback, speed gate, --int8 auto) → parity

- ``options``: ``ExportOptions`` (with ``Int8Options``), built once, passed whole, written as ``to_dict()``;
- ``images``: the images loaded once and split by the one held-out rule;
- ``steps``: each step a small function returning a small record; ``compose``: their order, staged;
- ``manifest``: the card in each file and ``manifest.json`` (version 2).
"""

from __future__ import annotations

from ..convert.int8.options import Int8Options
from ..core.sizes import parse_batch
from .compose import ExportResult, export
from .images import DEFAULT_CALIB_LIMIT, DEFAULT_SAMPLE_COUNT, DEFAULT_TRAINED_SAMPLE_COUNT, PARITY_SAMPLES
from .manifest import MANIFEST_VERSION, build_card, read_manifest, write_onnx
from .mobile import make_mobile
from .options import ExportOptions, check_input_size, options_from_keywords
from .steps import run_onnx

__all__ = [
    "DEFAULT_CALIB_LIMIT",
    "DEFAULT_SAMPLE_COUNT",
    "DEFAULT_TRAINED_SAMPLE_COUNT",
    "MANIFEST_VERSION",
    "PARITY_SAMPLES",
    "ExportOptions",
    "ExportResult",
    "Int8Options",
    "build_card",
    "check_input_size",
    "export",
    "make_mobile",
    "options_from_keywords",
    "parse_batch",
    "read_manifest",
    "run_onnx",
    "write_onnx",
]
