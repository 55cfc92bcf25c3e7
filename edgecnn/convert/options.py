"""The ONNX opsets the exporter takes (``convert.onnx_export`` and ``pipeline.options`` check against it).

The export's options live in their own rooms: ``ExportOptions`` in ``edgecnn.pipeline.options``, ``Int8Options``
in ``edgecnn.convert.int8.options``.
"""

from __future__ import annotations

OPSETS = range(18, 22)  # the dynamo exporter emits ≥ 18; 18–21 are tested with onnxsim and the quantizer
