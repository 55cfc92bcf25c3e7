"""The model registry: one plain ``ModelSpec`` per architecture, looked up by name or alias.

Each architecture file registers its builders with ``@register_model(...)``; the spec holds
what the rest of the toolkit needs to know without building the model (task, input size,
normalisation, reference figures, published checkpoints).
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Callable

from ..core.errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint (torchvision's or Pytorch-UNet's), with the preprocessing it was trained for."""

    name: str  # our short name, e.g. "imagenet1k_v1"
    url: str
    sha256_prefix: str  # the hex digits torch.hub puts in the file name
    num_classes: int = 1000
    labels: str | None = "imagenet"  # "imagenet" -> ImageNet-1K class names
    acc1: float | None = None
    acc5: float | None = None
    resize: int = 256
    crop: int = 224
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"
    file_size_mb: float | None = None
    arch_options: dict = field(default_factory=dict)  # options the checkpoint needs (GoogLeNet's transform_input)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelSpec:
    """Everything known about one architecture before it is built.

    Attributes:
        name: registry name (``"resnet50"``).
        family: the file it lives in (``"resnet"``).
        builder: ``builder(num_classes=..., **arch_options) -> nn.Module``.
        task: ``"classification"`` or ``"segmentation"``.
        input_size: default ``(H, W)``.
        min_input_size: smallest ``(H, W)`` the network takes.
        size_multiple: H and W must be multiples of this (U-Net: 16).
        num_classes: default number of classes.
        num_params: parameter count of the default model (reference value, checked by a test).
        gflops: multiply-accumulates ×1e-9 at ``input_size`` (checked by a test).
        paper: citation.
        aliases: other names accepted by ``get_spec``.
        reference: name of the state_dict key list this model must match (tests/reference/NAME.json).
        reference_options: arch options under which it matches that list.
        checkpoints: published checkpoints; the first is the default for ``weights="imagenet"``.
        mean / std / resize: preprocessing when no checkpoint says otherwise.
        arch_options: documented keyword options of the builder, with defaults.
        dynamic_hw: whether H/W may be dynamic in an exported graph (safe only without adaptive pooling).
    """

    name: str
    family: str
    builder: Callable
    task: str
    input_size: tuple
    min_input_size: tuple
    num_classes: int
    num_params: int
    gflops: float
    paper: str
    aliases: tuple = ()
    size_multiple: int = 1
    reference: str | None = None
    reference_options: dict = field(default_factory=dict)
    checkpoints: tuple = ()
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    resize: int | None = 256
    arch_options: dict = field(default_factory=dict)
    dynamic_hw: bool = False

    def checkpoint(self, name: str) -> Checkpoint:
        """A published checkpoint by name; ``"imagenet"`` is the first (torchvision's DEFAULT)."""
        if name == "imagenet" and self.checkpoints:
            return self.checkpoints[0]
        for ckpt in self.checkpoints:
            if ckpt.name == name:
                return ckpt
        known = ", ".join(["imagenet"] + [c.name for c in self.checkpoints]) if self.checkpoints else "none"
        raise UnknownModelError(
            f"no published checkpoint '{name}' for {self.name}; published: {known}. "
            "To load your own file, pass its path."
        )


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}


def register_model(**spec_fields) -> Callable:
    """Decorator: register ``builder`` under ``spec_fields['name']``. Refuses a duplicate name or alias."""

    def wrap(builder: Callable) -> Callable:
        name = spec_fields["name"]
        spec_fields.setdefault("checkpoints", published_checkpoints(name))
        spec = ModelSpec(builder=builder, **spec_fields)
        for key in (spec.name, *spec.aliases):
            if key in _REGISTRY or key in _ALIASES:
                raise ValueError(f"model name '{key}' is registered twice")
        _REGISTRY[spec.name] = spec
        for alias in spec.aliases:
            _ALIASES[alias] = spec.name
        return builder

    return wrap


def list_models() -> list[str]:
    """Names of every registered architecture, in registration order."""
    _load_families()
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name`` (a registry name or an alias, case-insensitive)."""
    _load_families()
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        choices = list(_REGISTRY) + list(_ALIASES)
        # Always offer the closest name (the CLI promises "did you mean"), and where to see them all.
        close = difflib.get_close_matches(key, choices, n=1, cutoff=0.0) or [choices[0]]
        raise UnknownModelError(f"unknown model '{name}'; did you mean '{close[0]}'? ('edgecnn list' shows all models)")
    return _REGISTRY[key]


def aliases() -> dict[str, str]:
    _load_families()
    return dict(_ALIASES)


def _load_families() -> None:
    # Importing the family modules runs their @register_model decorators; this order is the listing order.
    from . import alexnet  # noqa: F401
    from . import vgg  # noqa: F401
    from . import googlenet  # noqa: F401
    from . import mobilenet  # noqa: F401
    from . import resnet  # noqa: F401
    from . import unet  # noqa: F401


# --- published checkpoints, read from the copy of torchvision's weight tables shipped in edgecnn/data ---

_TRANSFORM_FIELD = re.compile(r"(\w+)=\[?([^\]\n]+)\]?")


@lru_cache(maxsize=None)
def _weights_table() -> dict:
    return json.loads(resources.files("edgecnn").joinpath("data/torchvision_weights.json").read_text())


@lru_cache(maxsize=None)
def imagenet_labels() -> tuple:
    """The 1000 ImageNet-1K class names, in class-index order."""
    return tuple(json.loads(resources.files("edgecnn").joinpath("data/imagenet_categories.json").read_text()))


def published_checkpoints(name: str) -> tuple:
    """torchvision's published checkpoints of ``name``, newest (their DEFAULT) first."""
    entries = _weights_table().get(name, [])
    out = []
    for entry in entries:
        tf = dict(_TRANSFORM_FIELD.findall(entry["transforms"]))
        tag = entry["name"].split(".", 1)[1].lower()  # IMAGENET1K_V1 -> imagenet1k_v1
        metrics = entry["metrics"]["ImageNet-1K"]
        acc1, acc5 = metrics["acc@1"], metrics["acc@5"]
        options = {"transform_input": True} if name == "googlenet" else {}
        out.append(
            Checkpoint(
                name=tag,
                url=entry["url"],
                sha256_prefix=re.search(r"-([0-9a-f]{6,})\.pth$", entry["url"]).group(1),
                # NaN accuracy marks the feature-extractor checkpoint: its classifier is untrained, so no labels.
                labels=None if acc1 != acc1 else "imagenet",
                acc1=None if acc1 != acc1 else acc1,
                acc5=None if acc5 != acc5 else acc5,
                resize=int(tf["resize_size"]),
                crop=int(tf["crop_size"]),
                mean=tuple(float(v) for v in tf["mean"].split(",")),
                std=tuple(float(v) for v in tf["std"].split(",")),
                interpolation=tf["interpolation"].rsplit(".", 1)[-1].lower(),
                file_size_mb=entry.get("file_size_mb"),
                arch_options=options,
            )
        )
    # torchvision's DEFAULT is the newest recipe (V2 where one exists); the feature-only VGG file is never a default.
    out.sort(key=lambda c: (c.acc1 is None, "features" in c.name, -int(re.sub(r"\D", "", c.name[-2:]) or 0)))
    return tuple(out)


def builder_options(spec: ModelSpec) -> dict:
    """The keyword options ``spec.builder`` takes besides ``num_classes``, with their defaults, in signature order."""
    # Read from the signature, so the check can never let through an option the builder would reject
    # with a TypeError (or refuse one it takes); "_"-prefixed parameters are the builders' bound loop values.
    params = inspect.signature(spec.builder).parameters
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
    import os

    from ..core.errors import EdgeCNNError
    from . import weights as _weights

    spec = get_spec(name)
    accepted = builder_options(spec)
    unknown = set(arch_options) - set(accepted)
    if unknown:
        raise EdgeCNNError(f"{spec.name} has no option {sorted(unknown)[0]!r}; options: "
                           f"{', '.join(accepted) or 'none'}")
    path, ckpt = None, None
    if weights is not None:
        # Published names ("imagenet1k_v1") never hold a dot or a slash; anything that does is a file, so a
        # mistyped "model.pth.tar" is reported as a missing file rather than an unknown checkpoint name.
        text = str(weights)
        looks_like_path = isinstance(weights, os.PathLike) or any(c in text for c in "./\\") or os.path.exists(text)
        if looks_like_path:
            path = str(weights)
        else:
            ckpt = spec.checkpoint(str(weights))
            arch_options = {**ckpt.arch_options, **arch_options}
            if num_classes is None:
                num_classes = ckpt.num_classes
    model = spec.builder(num_classes=num_classes or spec.num_classes, **arch_options)
    report = None
    if weights is not None:
        if ckpt is not None:
            path = str(_weights.fetch_published(ckpt, spec))
        state = _weights.read_state_dict(path)
        dropped = _weights.load_into(model, state, spec, path)
        notes = (f"dropped {len(dropped)} auxiliary-head tensors (training only)",) if dropped else ()
        report = _weights.LoadReport(path=path, sha256=_weights.sha256_file(path), dropped=dropped, notes=notes)
    return model.eval(), report
