"""ModelCard: everything an app needs to feed and read an exported model, stored inside the .onnx file.

The card lives in the ONNX ``metadata_props``, one key per field (prefixed ``edgecnn.``), each value JSON.
onnxruntime alone reads it back (``InferenceSession.get_modelmeta().custom_metadata_map``), so an app needs
neither torch nor edgecnn to know the input size, the normalisation or the labels. Only the standard
library is imported here: the torch-free runtime uses this module too.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

PREFIX = "edgecnn."
CARD_VERSION = 1


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
    def from_metadata(cls, props: Mapping[str, str]) -> "ModelCard | None":
        """Read a card back from metadata_props; ``None`` when the file carries no edgecnn card."""
        if PREFIX + "model" not in props:
            return None
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in props.items():
            if key.startswith(PREFIX) and key[len(PREFIX):] in known:
                try:
                    values[key[len(PREFIX):]] = json.loads(raw)
                except json.JSONDecodeError:
                    values[key[len(PREFIX):]] = raw
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

    def replace(self, **changes: Any) -> "ModelCard":
        return dataclasses.replace(self, **changes)
