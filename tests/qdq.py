"""A QDQ int8 file the quick way, for tests that need one but not the export's int8 step (~10 s of checks)."""

from __future__ import annotations

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, quantize_static


def quick_qdq(src, dst, size: int = 64, images: int = 4, **quantize_options):
    """``quantize_static`` of ``src`` into ``dst`` on a few random images (input named "input", 3×size×size)."""

    class Feeds(CalibrationDataReader):
        def __init__(self):
            rng = np.random.RandomState(0)
            self.it = iter({"input": rng.rand(1, 3, size, size).astype(np.float32)} for _ in range(images))

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Feeds(), **quantize_options)
    return dst
