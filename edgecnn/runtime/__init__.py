"""The torch-free runtime: what a device or an app needs to run an exported file (numpy, onnxruntime, Pillow).

``Predictor`` is imported on first use, so ``edgecnn.runtime.providers`` (what the bundle self-test needs)
loads without Pillow.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Predictor"]


def __getattr__(name: str) -> Any:
    if name == "Predictor":
        from .predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'edgecnn.runtime' has no attribute {name!r}")
