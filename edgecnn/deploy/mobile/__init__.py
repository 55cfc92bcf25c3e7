"""Mobile artifacts: a fixed-shape graph, ORT-format files, and an NNAPI / CoreML partition report.

    source .onnx (dynamic batch) ─ fix every shape ─ onnxsim ─ portable activations ─ NAME.fixed.onnx ─ parity
                                                                    ├─ NAME.fixed.ort                  ─ parity
                                                                    └─ NAME.fixed.with_runtime_opt.ort ─ parity
    partition report (NNAPI, CoreML NeuralNetwork, CoreML MLProgram) for the fixed graph and for the source

Why each step:

* NNAPI takes no node whose input shape is dynamic, so a dynamic batch axis leaves it nothing to run; CoreML runs
  dynamic shapes slowly. Every dimension is fixed, then onnxsim folds the shape arithmetic that became constant.
* NNAPI and CoreML's NeuralNetwork format lack ``HardSwish``/``HardSigmoid`` (MobileNetV3); written as
  ``Add → Clip(0, 6) → Div`` (and a ``Mul``) they run there, with the clip mapping to NNAPI's RELU6. The
  ``ReduceMean → GlobalAveragePool`` rewrite of ``edgecnn.convert.simplify`` is applied again in case the source
  skipped it.
* ``.ort`` files load in onnxruntime's mobile (minimal) builds. ``NAME.fixed.ort`` is optimised ahead of time
  for the CPU/XNNPACK providers; ``NAME.fixed.with_runtime_opt.ort`` keeps the graph at basic optimisations so
  NNAPI/CoreML can take whole partitions (onnxruntime's own guidance). ``required_operators*.config`` list the
  kernels a minimal onnxruntime build needs for them (``build.sh --include_ops_by_config``).

The partition estimate is onnxruntime's usability checker (``onnxruntime.tools.mobile_helpers``), read through
its structured results — its command line always exits 0. It judges by operator type and shape; the caveats it
lists (e.g. "Only 2D Conv") are not checked and are reported as such.

Modules, one job each: ``shapes`` (choose and fix the input shape, fold), ``rewrites`` (portable activation and
Flatten forms), ``ort_format`` (``.ort`` conversion), ``partitions`` (the NNAPI/CoreML estimate), ``render``
(the text report), ``records`` (result records), ``make`` (``make_mobile``, the step). Every public name is
importable from here.
"""

from __future__ import annotations

from .make import make_mobile
from .ort_format import convert_to_ort
from .partitions import partition_report
from .records import (
    EPS,
    HINTS,
    PARITY_SAMPLES,
    REPORT_JSON,
    REPORT_TEXT,
    Fallback,
    MobileArtifact,
    MobileResult,
    Partitioning,
)
from .render import render_report
from .rewrites import decompose_hard_activations, flatten_to_reshape
from .shapes import count_dynamic_values, fix_shapes, fixed_shape, graph_inputs

__all__ = [
    "make_mobile",
    "MobileResult",
    "MobileArtifact",
    "Partitioning",
    "Fallback",
    "partition_report",
    "render_report",
    "fix_shapes",
    "fixed_shape",
    "decompose_hard_activations",
    "flatten_to_reshape",
    "count_dynamic_values",
    "convert_to_ort",
    "graph_inputs",
    "EPS",
    "HINTS",
    "PARITY_SAMPLES",
    "REPORT_JSON",
    "REPORT_TEXT",
]
