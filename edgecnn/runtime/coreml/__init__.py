"""Core ML, one runtime behind ``runtime.runner``: ``mlpackage`` reads an ``.mlpackage`` structurally (standard
library only: I/O names, shapes and types, ML program operators, weight precision, specification version, the
card), ``runner`` predicts through coremltools where Core ML exists (macOS) and says in one line why not elsewhere.

Importing this package needs only numpy: coremltools is imported when a package is opened on macOS.
"""

from __future__ import annotations

from .mlpackage import inspect, precision_of, structural_problems
from .runner import INSTALL, NOT_RUN, UNITS, CoreMLRunner, open_coreml, pick_unit, predictor_api

__all__ = [
    "INSTALL",
    "NOT_RUN",
    "UNITS",
    "CoreMLRunner",
    "inspect",
    "open_coreml",
    "pick_unit",
    "predictor_api",
    "precision_of",
    "structural_problems",
]
