"""edgecnn: classic CNNs from PyTorch to the edge.

The public API is re-exported here. Names are imported on first use (PEP 562), so that
``import edgecnn.runtime`` in an app never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .card import ModelCard  # standard library only
from .errors import EdgeCNNError  # standard library only

# public name -> the submodule that defines it
_LAZY = {
    "create_model": "models", "get_spec": "models", "list_models": "models", "ModelSpec": "models",
    "export": "pipeline", "ExportResult": "pipeline",
    "compare": "parity", "ParityReport": "parity",
    "Predictor": "runtime", "load_image": "preprocess", "PreprocessParams": "preprocess",
    "benchmark": "bench", "benchmark_many": "bench", "BenchResult": "bench",
    "make_session": "providers", "available_providers": "providers",
    "validate": "validate", "ValidationResult": "validate",
    "make_mobile": "mobile", "MobileResult": "mobile",
    "make_bundle": "bundle", "selftest": "bundle", "SelftestResult": "bundle",
    "embed_preprocessing": "embed",
    "build_int8": "int8", "Int8Result": "int8", "int8_form": "quantize",
    "CheckpointError": "errors", "UnknownModelError": "errors", "InputError": "errors",
    "ArtifactError": "errors", "ProviderUnavailableError": "errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgecnn' has no attribute {name!r}")
    attr = "available" if name == "available_providers" else name
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["__version__", "ModelCard", "EdgeCNNError", *_LAZY]

if TYPE_CHECKING:
    from .bench import BenchResult, benchmark, benchmark_many
    from .models import ModelSpec, create_model, get_spec, list_models
    from .parity import ParityReport, compare
    from .pipeline import ExportResult, export
    from .preprocess import PreprocessParams, load_image
    from .providers import available as available_providers
    from .providers import make_session
    from .bundle import SelftestResult, make_bundle, selftest
    from .embed import embed_preprocessing
    from .int8 import Int8Result, build_int8
    from .quantize import int8_form
    from .errors import ArtifactError, CheckpointError, InputError, ProviderUnavailableError, UnknownModelError
    from .mobile import MobileResult, make_mobile
    from .runtime import Predictor
    from .validate import ValidationResult, validate
