"""The torch-free runtime: what a device or an app needs to run an exported file (numpy, onnxruntime, Pillow)."""

from .predictor import Predictor

__all__ = ["Predictor"]
