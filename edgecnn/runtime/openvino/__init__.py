"""OpenVINO, one runtime behind ``runtime.runner``: ``config`` (the device, precision hint and threads for either
backend; the onnxruntime plugin's registration; which backend runs ``--ep openvino`` here) and ``runner`` (OpenVINO's
own runtime as a ``Runner``). ``runner`` imports ``config``, never the other way."""

from __future__ import annotations

from .config import (
    BACKENDS,
    INSTALL,
    ORT_NAME,
    PLUGIN,
    PRECISIONS,
    RUNTIME,
    add_providers,
    backend,
    backend_choice,
    config,
    device,
    options,
    plugin_offers_device,
    precision_hint,
    precision_of,
    register,
    runtime_offers_device,
    unavailable_message,
)
from .runner import STATIC_SHAPES, CompileError, OpenVINORunner, open_openvino

__all__ = [
    "BACKENDS",
    "INSTALL",
    "ORT_NAME",
    "PLUGIN",
    "PRECISIONS",
    "RUNTIME",
    "STATIC_SHAPES",
    "CompileError",
    "OpenVINORunner",
    "add_providers",
    "backend",
    "backend_choice",
    "config",
    "device",
    "open_openvino",
    "options",
    "plugin_offers_device",
    "precision_hint",
    "precision_of",
    "register",
    "runtime_offers_device",
    "unavailable_message",
]
