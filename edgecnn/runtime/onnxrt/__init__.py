"""onnxruntime, one runtime behind ``runtime.runner``: ``session`` makes the ``InferenceSession`` (the only
place one is created), ``runner`` wraps it as a ``Runner``."""

from __future__ import annotations

from .runner import OnnxRuntimeRunner, io_spec, open_onnxrt
from .session import create_session, model_precision, node_assignment, session_options

__all__ = [
    "OnnxRuntimeRunner",
    "create_session",
    "io_spec",
    "model_precision",
    "node_assignment",
    "open_onnxrt",
    "session_options",
]
