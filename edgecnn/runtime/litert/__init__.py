"""LiteRT (formerly TensorFlow Lite), one runtime behind ``runtime.runner``: ``runner`` opens a ``.tflite`` file on
LiteRT's interpreter (XNNPACK delegate or LiteRT's own kernels), ``flatbuf`` reads the edgecnn card stored inside.

Importing this package needs only numpy: ``ai_edge_litert`` is imported when a file is opened, and its absence is
one line saying what to install.
"""

from __future__ import annotations

from .flatbuf import CARD_NAME, MAX_CARD_BYTES, read_card
from .runner import INSTALL, PROVIDERS, LiteRTRunner, delegation, open_litert, pick_provider

__all__ = [
    "CARD_NAME",
    "INSTALL",
    "MAX_CARD_BYTES",
    "PROVIDERS",
    "LiteRTRunner",
    "delegation",
    "open_litert",
    "pick_provider",
    "read_card",
]
