"""The model zoo: from-scratch architectures, their registry, and checkpoint loading."""

from .registry import (
    Checkpoint,
    ModelSpec,
    aliases,
    create_model,
    create_model_with_report,
    get_spec,
    imagenet_labels,
    list_models,
    register_model,
)

__all__ = [
    "Checkpoint",
    "ModelSpec",
    "aliases",
    "create_model",
    "create_model_with_report",
    "get_spec",
    "imagenet_labels",
    "list_models",
    "register_model",
]
