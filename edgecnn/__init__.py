"""edgecnn: classic CNNs from PyTorch to the edge.

The public API is re-exported here. Names are imported on first use (PEP 562), so that
``import edgecnn.runtime`` in an app never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core.card import ModelCard  # standard library only
from .core.errors import EdgeCNNError  # standard library only
from .core.version import __version__  # standard library only

# public name -> the submodule that defines it
_LAZY = {
    "create_model": "models",
    "get_spec": "models",
    "list_models": "models",
    "ModelSpec": "models",
    "export": "pipeline",
    "ExportResult": "pipeline",
    "compare": "runtime.compare",
    "ParityReport": "runtime.compare",
    "Predictor": "runtime.predictor",
    "load_image": "runtime.preprocess",
    "PreprocessParams": "runtime.preprocess",
    "benchmark": "runtime.bench",
    "benchmark_many": "runtime.bench",
    "BenchResult": "runtime.bench",
    "make_session": "runtime.providers",
    "available_providers": "runtime.providers",
    "validate": "convert.validate",
    "ValidationResult": "convert.validate",
    "make_mobile": "pipeline",
    "MobileResult": "deploy.mobile",
    "make_bundle": "deploy.bundle",
    "selftest": "deploy.bundle",
    "SelftestResult": "deploy.bundle",
    "embed_preprocessing": "deploy.embed",
    "build_int8": "convert.int8",
    "Int8Result": "convert.int8",
    "int8_form": "convert.int8",
    "CheckpointError": "core.errors",
    "UnknownModelError": "core.errors",
    "InputError": "core.errors",
    "ArtifactError": "core.errors",
    "ProviderUnavailableError": "core.errors",
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
    from .convert.int8 import Int8Result, build_int8, int8_form
    from .convert.validate import ValidationResult, validate
    from .core.errors import ArtifactError, CheckpointError, InputError, ProviderUnavailableError, UnknownModelError
    from .deploy.bundle import SelftestResult, make_bundle, selftest
    from .deploy.embed import embed_preprocessing
    from .deploy.mobile import MobileResult
    from .models import ModelSpec, create_model, get_spec, list_models
    from .pipeline import ExportResult, export, make_mobile
    from .runtime.bench import BenchResult, benchmark, benchmark_many
    from .runtime.compare import ParityReport, compare
    from .runtime.predictor import Predictor
    from .runtime.preprocess import PreprocessParams, load_image
    from .runtime.providers import available as available_providers
    from .runtime.providers import make_session
