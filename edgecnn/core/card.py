"""ModelCard: everything an app needs to feed and read an exported model, stored inside the .onnx file.

The card lives in the ONNX ``metadata_props``, one key per field (prefixed ``edgecnn.``), each value JSON.
onnxruntime alone reads it back (``InferenceSession.get_modelmeta().custom_metadata_map``), so an app needs
neither torch nor edgecnn to know the input size, the normalisation or the labels. Only the standard
library is imported here: the torch-free runtime uses this module too.

Read back (``from_metadata``), every value is checked for its type and range (``CARD_SCHEMA``): a damaged or
hand-edited card is one ``ArtifactError`` naming the file and the key. ``check_classes`` checks the class count the
card states, and labels given by the caller, against the graph's output (a mismatch would put names on the wrong
classes, or mix names and bare numbers).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ArtifactError, InputError
from .schema import Choice, MapOf, Mismatch, Opt, Where, check, is_finite
from .sizes import MAX_SIDE

PREFIX = "edgecnn."
CARD_VERSION = 1

#: The most classes a card may state. ImageNet-21k has 21,841; a count past this is a damaged card, not a model
#: (validate and bench would build a PyTorch head that size: 10**12 rows exhaust any memory).
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class ModelCard:
    """How to call one exported model.

    Attributes:
        model: registry name, e.g. ``"mobilenet_v2"``.
        task: ``"classification"`` or ``"segmentation"``.
        input_name / output_name: graph I/O names.
        input_shape: ``[N, C, H, W]``; a string (``"batch"``, ``"height"``) marks a dynamic axis.
        layout: ``"NCHW"``, or ``"NHWC"`` when preprocessing is embedded in the graph.
        input_dtype: ``"float32"``, or ``"uint8"`` when preprocessing is embedded.
        color_order: channel order the model expects (``"RGB"``).
        pixel_scale: images are divided by this before mean/std (255 → values in [0, 1]).
        mean / std: per-channel normalisation applied after scaling.
        resize: shorter side is resized to this many pixels first (``None``: resize straight to the crop).
        crop: ``[H, W]`` of the centre crop that is fed to the model.
        interpolation: resize filter, ``"bilinear"`` (antialiased, as torchvision does on PIL images).
        num_classes: size of the class axis.
        labels: class names, or ``None`` when unknown.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        opset: ONNX default-domain opset of the file.
        weights: where the weights came from: ``{"source": ..., "sha256": ...}``.
        versions: versions of the tools that produced the file.
        preprocess_embedded: True when the graph itself resizes nothing but casts and normalises uint8 NHWC input.
        extra: anything else worth keeping (calibration summary, ...).
    """

    model: str
    task: str
    input_name: str = "input"
    output_name: str = "output"
    input_shape: list = field(default_factory=lambda: ["batch", 3, 224, 224])
    layout: str = "NCHW"
    input_dtype: str = "float32"
    color_order: str = "RGB"
    pixel_scale: float = 255.0
    mean: list = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list = field(default_factory=lambda: [0.229, 0.224, 0.225])
    resize: int | None = 256
    crop: list = field(default_factory=lambda: [224, 224])
    interpolation: str = "bilinear"
    num_classes: int = 1000
    labels: list | None = None
    precision: str = "fp32"
    opset: int = 18
    weights: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    preprocess_embedded: bool = False
    extra: dict = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        """The card as ONNX metadata_props: ``{"edgecnn.<field>": json}``."""
        props = {PREFIX + "card_version": json.dumps(CARD_VERSION)}
        for f in dataclasses.fields(self):
            props[PREFIX + f.name] = json.dumps(getattr(self, f.name))
        return props

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], source: str | None = None) -> ModelCard | None:
        """Read a card back from metadata_props; ``None`` when the file carries no edgecnn card.

        Every value is checked for its type and range (``CARD_SCHEMA``), and labels against ``num_classes``.

        Args:
            props: the metadata (``custom_metadata_map``, or ``{p.key: p.value for p in model.metadata_props}``).
            source: the model file's name, for the message.

        Raises:
            ArtifactError: a value of the wrong type or out of range, naming the file and the key
                (``m.onnx: card key edgecnn.mean must be a list of 1 to 64 numbers (one per channel), got 'abc'``).
        """
        if PREFIX + "model" not in props:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in props.items():
            if key.startswith(PREFIX) and key[len(PREFIX) :] in known:
                try:
                    values[key[len(PREFIX) :]] = json.loads(raw)
                except (json.JSONDecodeError, RecursionError):
                    values[key[len(PREFIX) :]] = raw  # a bare string, as other tools write names
        check_card_values(values, source)
        return cls(**values)

    def attach(self, model: Any) -> None:
        """Write this card into an ``onnx.ModelProto``'s metadata_props, in place, replacing an older card.

        Other tools' entries are kept, except onnxsim's ~20 bookkeeping entries, which apps do not need.
        Takes the proto by duck typing, so this module stays free of the onnx import.
        """
        props = self.to_metadata()
        keep = [p for p in model.metadata_props if p.key not in props and not p.key.startswith("onnxsim.")]
        del model.metadata_props[:]
        model.metadata_props.extend(keep)
        for key, value in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value

    def replace(self, **changes: Any) -> ModelCard:
        return dataclasses.replace(self, **changes)


# --- reading a card back: every value's type and range ---------------------------------------------------------


def _positive_int(limit: int | None = None) -> Where:
    what = "a positive integer" if limit is None else f"an integer from 1 to {limit}"
    return Where(int, lambda v: v >= 1 and (limit is None or v <= limit), what)


#: Image channels a card may describe (mean/std have one value per channel; in_channels builds the first layer).
MAX_CHANNELS = 64


def _numbers(positive: bool) -> Where:
    ok = (lambda v: is_finite(v) and v > 0) if positive else is_finite
    what = f"a list of 1 to {MAX_CHANNELS} {'positive ' if positive else ''}numbers (one per channel)"
    return Where(list, lambda v: 1 <= len(v) <= MAX_CHANNELS and all(ok(x) for x in v), what)


def _axis(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)


#: Builder options a card may carry in ``extra.arch_options`` with the type their builders take (others: any
#: plain value; the registry refuses names a builder does not take).
ARCH_OPTION_SCHEMA = {
    "width_mult": Where(float, lambda v: is_finite(v) and 0 < v <= 16, "a positive number (at most 16)"),
    "dropout": Where(float, lambda v: is_finite(v) and 0 <= v < 1, "a number from 0 to below 1"),
    "in_channels": _positive_int(MAX_CHANNELS),
    "bilinear": bool,
    "aux_logits": bool,
    "transform_input": bool,
    "zero_init_residual": bool,
}
_SCALAR = (str, float, bool, None)

#: What each card value must be (``check_card_values``); keys are the card's fields without the prefix.
CARD_SCHEMA = {
    "card_version": Opt(_positive_int()),
    "model": Where(str, lambda v: bool(v.strip()), "a model name"),
    "task": Opt(Choice("classification", "segmentation")),
    "input_name": Opt(str),
    "output_name": Opt(str),
    "input_shape": Opt(
        Where(
            list,
            lambda v: len(v) == 4 and all(_axis(d) for d in v),
            "a list of 4 sizes (positive integers, or names for dynamic axes)",
        )
    ),
    "layout": Opt(Choice("NCHW", "NHWC")),
    "input_dtype": Opt(str),
    "color_order": Opt(str),
    "interpolation": Opt(str),
    "precision": Opt(str),
    "pixel_scale": Opt(Where(float, lambda v: is_finite(v) and v > 0, "a positive number")),
    "mean": Opt(_numbers(positive=False)),
    "std": Opt(_numbers(positive=True)),
    "resize": Opt((None, _positive_int(2 * MAX_SIDE))),
    "crop": Opt(
        Where(
            list,
            lambda v: (
                len(v) == 2 and all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_SIDE for d in v)
            ),
            f"[height, width], each an integer from 1 to {MAX_SIDE}",
        )
    ),
    "num_classes": Opt(_positive_int(MAX_CLASSES)),
    "labels": Opt((None, [str])),
    "opset": Opt(_positive_int()),
    "weights": Opt(dict),
    "versions": Opt(dict),
    "preprocess_embedded": Opt(bool),
    "extra": Opt({"arch_options": Opt(MapOf(_SCALAR)), "size_multiple": Opt(_positive_int(1024))}),
}


def check_card_values(values: Mapping[str, Any], source: str | None = None) -> None:
    """Check card values (field name → value read back) against ``CARD_SCHEMA``, ``ARCH_OPTION_SCHEMA``, and
    each other (``std`` as long as ``mean``, one label per class).

    Raises:
        ArtifactError: naming the file, the key and the value (``card key edgecnn.mean must be …, got 'abc'``).
    """
    where = f"{source}: card key" if source else "card key"
    fix = "export the model again (or correct its metadata)"
    try:
        check(dict(values), CARD_SCHEMA)
        arch = (values.get("extra") or {}).get("arch_options") or {}
        check(
            {k: v for k, v in arch.items() if k in ARCH_OPTION_SCHEMA},
            {k: Opt(spec) for k, spec in ARCH_OPTION_SCHEMA.items()},
            "extra.arch_options",
        )
    except Mismatch as exc:
        raise ArtifactError(f"{where} {PREFIX}{exc.key} {exc.detail}; {fix}") from None
    mean, std = values.get("mean"), values.get("std")
    if mean is not None and std is not None and len(mean) != len(std):
        raise ArtifactError(f"{where} {PREFIX}std has {len(std)} values but {PREFIX}mean {len(mean)}; {fix}")
    labels, classes = values.get("labels"), values.get("num_classes", ModelCard.num_classes)
    if labels is not None and not labels_fit(len(labels), classes):
        raise ArtifactError(
            f"{where} {PREFIX}labels holds {len(labels)} names but {PREFIX}num_classes is "
            f"{classes}: every class needs one name, in class order; {fix}"
        )


def labels_fit(names: int, classes: int) -> bool:
    """One name per class; a binary segmentation model (one output channel) may also name both of its classes."""
    return names == classes or (classes == 1 and names == 2)


def class_axis(output_shape: Sequence) -> int | None:
    """The size of an output's class axis (axis 1 of N×K or N×K×H×W), or ``None`` when it is dynamic or absent."""
    if len(output_shape) < 2:
        return None
    width = output_shape[1]
    return width if isinstance(width, int) and not isinstance(width, bool) and width > 0 else None


def check_classes(
    source: str, card: ModelCard | None, output_shape: Sequence, labels: Sequence[str] | None = None
) -> None:
    """Check the class count the card states and the labels given against the graph's output.

    Args:
        source: the model file's name, for the message.
        card: the file's card, or ``None``.
        output_shape: the shape of the output that is read (its axis 1 is the class axis).
        labels: class names given by the caller (``labels=`` / ``--labels``); ``None``: the card's are used.

    Raises:
        ArtifactError: the card's ``num_classes`` is not the graph's class axis (its labels and indices would be
            wrong: the card belongs to another model or was edited).
        InputError: the names given are not one per class (names and bare numbers would be mixed, or names
            would be shifted onto the wrong classes).
    """
    width = class_axis(output_shape)
    if card is not None and width is not None and card.num_classes != width:
        raise ArtifactError(
            f"{source}: its card says {card.num_classes} classes ({PREFIX}num_classes) but the "
            f"graph's output has {width}; the card belongs to another model or was edited: export "
            "the model again"
        )
    classes = width if width is not None else (card.num_classes if card is not None else None)
    if labels is not None and classes is not None and not labels_fit(len(labels), classes):
        raise InputError(
            f"{len(labels)} class names given (labels / --labels) for the {classes} classes of "
            f"{source}: every class needs one name, in class order (one per line)"
        )
