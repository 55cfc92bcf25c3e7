"""What an export writes beside its ONNX files: the model card in each file and ``manifest.json``.

The manifest (version 2) is one schema: ``options`` is exactly ``ExportOptions.to_dict()`` (``int8`` the
``Int8Options`` fields or ``null``); what the export made of them is in ``card`` (size, classes) and ``artifacts``.
Version 1 manifests (``options.int8`` a flag, ``options.int8_options``) are still read:
``edgecnn.core.documents.manifest_options`` gives either as version 2 shapes it.

Standard library and numpy only at import (the CLI reads manifests without torch).
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..core.artifact import MANIFEST, read_manifest  # noqa: F401 - re-exported
from ..core.card import ModelCard
from ..core.version import __version__


def build_card(
    spec,
    hw: tuple[int, int],
    num_classes: int,
    checkpoint,
    batch: int | None,
    dynamic_hw: bool,
    labels: list | None,
    in_channels: int = 3,
) -> ModelCard:
    """The metadata card for an export of ``spec`` at ``hw`` (preprocessing from the checkpoint if published)."""
    mean, std, resize, interpolation = spec.mean, spec.std, spec.resize, "bilinear"
    if checkpoint is not None:
        mean, std, interpolation = checkpoint.mean, checkpoint.std, checkpoint.interpolation
        resize = round(checkpoint.resize * hw[0] / checkpoint.crop)
    elif resize is not None:
        resize = round(resize * hw[0] / spec.input_size[0])  # keep the resize/crop ratio (256/224) at other sizes
    if in_channels != len(mean):
        mean, std = [float(np.mean(mean))] * in_channels, [float(np.mean(std))] * in_channels
    shape = [
        "batch" if batch is None else batch,
        in_channels,
        "height" if dynamic_hw else hw[0],
        "width" if dynamic_hw else hw[1],
    ]
    return ModelCard(
        model=spec.name,
        task=spec.task,
        input_name="input",
        output_name="logits",
        input_shape=shape,
        color_order="RGB" if in_channels == 3 else "L",
        mean=list(mean),
        std=list(std),
        resize=resize,
        crop=list(hw),
        interpolation=interpolation,
        num_classes=num_classes,
        labels=labels,
    )


#: The packages behind each format beyond ONNX, recorded when the export writes that format.
FORMAT_PACKAGES = {
    "tflite": ("litert-torch", "ai-edge-litert"),
    "pte": ("executorch", "torchao"),
    "coreml": ("coremltools",),
}


def tool_versions(formats: tuple = ()) -> dict:
    """The versions of what made the files: always the ONNX stack, and each other format's converter and runtime."""
    import onnx
    import onnxruntime
    import torch

    try:
        from importlib.metadata import version

        onnxsim_version = version("onnxsim")
    except Exception:  # onnxsim missing or unreadable: recorded, not fatal
        onnxsim_version = None
    versions = {
        "edgecnn": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxsim": onnxsim_version,
        "python": platform.python_version(),
    }
    for fmt in formats:
        for package in FORMAT_PACKAGES.get(fmt, ()):
            versions[package] = _version_of(package)
    return versions


def _version_of(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def weights_record(weights, load_report, checkpoint) -> dict:
    if weights is None:
        return {"source": "random", "sha256": None}
    record = {
        "source": checkpoint.name if checkpoint is not None else "file",
        "path": load_report.path,
        "sha256": load_report.sha256,
        "notes": list(load_report.notes),
    }
    if checkpoint is not None:
        record.update(url=checkpoint.url, acc1=checkpoint.acc1, acc5=checkpoint.acc5)
    return record


MANIFEST_VERSION = 2


def write_onnx(model, card: ModelCard, path: Path) -> None:
    """Save ``model`` at ``path`` with ``card`` stamped in: the card is written with the file, never added later."""
    import onnx

    put_metadata(model, card)
    onnx.save(model, str(path))


def card_stamp(card: ModelCard):
    """``put_metadata`` bound to ``card``: what a step that writes an ONNX file itself (fp16, int8) calls on the
    model just before saving it, so the card goes in with the first write."""
    return lambda model: put_metadata(model, card)


def put_metadata(model, card: ModelCard) -> None:
    card.attach(model)
    model.producer_name = "edgecnn"
    model.producer_version = __version__
    model.doc_string = f"{card.model} ({card.precision}) exported by edgecnn {__version__}"


def build_manifest(
    spec, options, card: ModelCard, command: str | None, *, checkpoint, records: dict, artifacts: list
) -> dict:
    """``manifest.json`` (version 2): ``options`` exactly ``options.to_dict()``; ``records`` the steps' own blocks
    (``weights``, ``calibration``, ``int8``, ``bundle``, ``golden``, ``versions``, ``timings_s``, ``warnings``)."""
    return {
        "edgecnn_manifest": MANIFEST_VERSION,
        "model": spec.name,
        "task": spec.task,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or f"edgecnn.export({spec.name!r})",
        "options": options.to_dict(),
        "weights": records["weights"],
        "card": {k: v for k, v in asdict(card).items() if k not in ("labels", "versions", "weights")},
        "labels": "imagenet-1k"
        if card.labels is not None and checkpoint is not None
        else ("custom" if card.labels else None),
        "calibration": records["calibration"],
        "int8": records.get("int8"),
        "artifacts": [a.to_dict() for a in artifacts],
        "bundle": records.get("bundle"),
        "golden": records.get("golden"),
        "versions": records["versions"],
        "timings_s": records["timings_s"],
        "warnings": records["warnings"],
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2))
