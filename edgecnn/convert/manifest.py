"""What an export writes beside its ONNX files: the model card in each file and ``manifest.json``.

Standard library and numpy only at import (the CLI reads manifests without torch).
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import __version__
from ..core.artifact import MANIFEST, read_manifest  # noqa: F401 - re-exported
from ..core.card import ModelCard


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


def tool_versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    try:
        from importlib.metadata import version

        onnxsim_version = version("onnxsim")
    except Exception:  # onnxsim missing or unreadable: recorded, not fatal
        onnxsim_version = None
    return {
        "edgecnn": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxsim": onnxsim_version,
        "python": platform.python_version(),
    }


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


def write_onnx(model, card: ModelCard, path: Path) -> None:
    import onnx

    put_metadata(model, card)
    onnx.save(model, str(path))


def put_metadata(model, card: ModelCard) -> None:
    card.attach(model)
    model.producer_name = "edgecnn"
    model.producer_version = __version__
    model.doc_string = f"{card.model} ({card.precision}) exported by edgecnn {__version__}"


def set_card(path: Path, card: ModelCard) -> None:
    import onnx

    model = onnx.load(str(path))
    put_metadata(model, card)
    onnx.save(model, str(path))


def options_record(options, card: ModelCard) -> dict:
    """``manifest["options"]``: ``options.to_dict()`` plus the keys earlier manifests had (``int8`` as the flag)."""
    record = options.to_dict()
    int8 = options.int8
    record["int8_options"] = record.pop("int8")
    record.update(
        int8=(True if int8.policy == "static" else int8.policy) if int8 else False,
        calib_method=int8.calib_method if int8 else None,
        num_classes=card.num_classes,
    )
    return record


def build_manifest(
    *,
    spec,
    options,
    card: ModelCard,
    command: str | None,
    weights: dict,
    checkpoint,
    calibration: dict,
    int8: dict | None,
    artifacts: list,
    bundle: dict | None,
    versions: dict,
    timings: dict,
    warnings: list,
) -> dict:
    return {
        "edgecnn_manifest": 1,
        "model": spec.name,
        "task": spec.task,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command or f"edgecnn.export({spec.name!r})",
        "options": options_record(options, card),
        "weights": weights,
        "card": {k: v for k, v in asdict(card).items() if k not in ("labels", "versions", "weights")},
        "labels": "imagenet-1k"
        if card.labels is not None and checkpoint is not None
        else ("custom" if card.labels else None),
        "calibration": calibration,
        "int8": int8,
        "artifacts": [a.to_dict() for a in artifacts],
        "bundle": bundle,
        "versions": versions,
        "timings_s": timings,
        "warnings": warnings,
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2))
