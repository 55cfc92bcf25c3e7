"""The model registry: the zoo's specs (``specs.py``, plain data) looked up by name or alias, and
``create_model``, which imports a family's nn.Module code only when a model is built.

Importing this module does not import torch: ``edgecnn list`` / ``info`` and the device install use it.
``register_model`` adds an architecture at run time (refusing duplicate names), for user code and tests.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable

from ..core.errors import UnknownModelError
from ..core.paths import is_checkpoint_path
from .specs import Checkpoint, ModelSpec, imagenet_labels, published_checkpoints, zoo

__all__ = [
    "Checkpoint",
    "ModelSpec",
    "aliases",
    "builder_options",
    "create_model",
    "create_model_with_report",
    "get_spec",
    "imagenet_labels",
    "list_models",
    "register_model",
]

_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register_model(**spec_fields) -> Callable:
    """Decorator: register ``builder`` under ``spec_fields['name']``. Refuses a duplicate name or alias."""

    def wrap(builder: Callable) -> Callable:
        name = spec_fields["name"]
        spec_fields.setdefault("checkpoints", published_checkpoints(name))
        spec_fields.setdefault("family", "user")
        spec = ModelSpec(builder=builder, **spec_fields)
        _add(spec)
        return builder

    return wrap


def _add(spec: ModelSpec) -> None:
    for key in (spec.name, *spec.aliases):
        if key in _REGISTRY or key in _ALIASES:
            raise ValueError(f"model name '{key}' is registered twice")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name


def list_models() -> list[str]:
    """Names of every registered architecture, in registration order."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name`` (a registry name or an alias, case-insensitive)."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        choices = list(_REGISTRY) + list(_ALIASES)
        # Always offer the closest name (the CLI promises "did you mean"), and where to see them all.
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.0) or [choices[0]]
        raise UnknownModelError(f"unknown model '{name}'; did you mean '{close[0]}'? ('edgecnn list' shows all models)")
    return _REGISTRY[key]


def aliases() -> dict[str, str]:
    return dict(_ALIASES)


def builder_options(spec: ModelSpec) -> dict:
    """The keyword options ``spec.builder`` takes besides ``num_classes``, with their defaults, in signature order."""
    # The zoo's specs carry them as data (torch-free; tests/test_registry.py checks them against the signature).
    # For a model registered at run time they are read from its builder's signature.
    if spec.builder_options is not None:
        return dict(spec.builder_options)
    params = inspect.signature(builder_of(spec)).parameters
    return {n: p.default for n, p in params.items() if n != "num_classes" and not n.startswith("_")}


def create_model(name: str, *, num_classes: int | None = None, weights: str | None = None, **arch_options):
    """Build a model, optionally load weights, and return it in eval mode.

    Args:
        name: registry name or alias (``"mobilenet"`` → ``mobilenet_v2``).
        num_classes: size of the classifier; defaults to the spec's (or the published checkpoint's).
        weights: ``None`` for random init; a path to a checkpoint file; or a published checkpoint name
            (``"imagenet"``, ``"imagenet1k_v1"``, …) fetched through torch.hub's cache with its hash checked.
        **arch_options: builder options (``width_mult``, ``bilinear``, ``aux_logits``, ...).

    Raises:
        UnknownModelError: unknown name. CheckpointError: unreadable or mismatched weights.
    """
    model, _ = create_model_with_report(name, num_classes=num_classes, weights=weights, **arch_options)
    return model


def create_model_with_report(name: str, *, num_classes: int | None = None, weights: str | None = None, **arch_options):
    """Like ``create_model``, and also returns the ``LoadReport`` (``None`` without weights)."""
    from ..core.errors import EdgeCNNError
    from . import weights as _weights

    spec = get_spec(name)
    accepted = builder_options(spec)
    unknown = set(arch_options) - set(accepted)
    if unknown:
        raise EdgeCNNError(
            f"{spec.name} has no option {sorted(unknown)[0]!r}; options: {', '.join(accepted) or 'none'}"
        )
    path, ckpt = None, None
    if weights is not None:
        if is_checkpoint_path(weights):
            path = str(weights)
        else:
            ckpt = spec.checkpoint(str(weights))
            arch_options = {**ckpt.arch_options, **arch_options}
            if num_classes is None:
                num_classes = ckpt.num_classes
    model = builder_of(spec)(num_classes=num_classes or spec.num_classes, **arch_options)
    report = None
    if weights is not None:
        if ckpt is not None:
            path = str(_weights.fetch_published(ckpt, spec))
        state = _weights.read_state_dict(path)
        dropped = _weights.load_into(model, state, spec, path)
        notes = (f"dropped {len(dropped)} auxiliary-head tensors (training only)",) if dropped else ()
        # the manifest records it absolute: validate, run from another folder, must still find the checkpoint
        report = _weights.LoadReport(
            path=os.path.abspath(path), sha256=_weights.sha256_file(path), dropped=dropped, notes=notes
        )
    return model.eval(), report


for _spec in zoo():
    _add(_spec)


def builder_of(spec: ModelSpec) -> Callable:
    """The builder function a spec names (``"resnet:resnet50"``), from its family module (these import torch;
    ``models.specs`` stays data, read by ``edgecnn list``/``info`` without it)."""
    if callable(spec.builder):
        return spec.builder
    from . import alexnet, efficientnet, googlenet, mobilenet, resnet, unet, vgg  # torch: only when a model is built

    module, function = spec.builder.split(":")
    families = {
        m.__name__.rsplit(".", 1)[-1]: m for m in (alexnet, efficientnet, googlenet, mobilenet, resnet, unet, vgg)
    }
    if module not in families:
        raise ValueError(f"{spec.name}: no model family '{module}' in edgecnn.models")
    return getattr(families[module], function)
