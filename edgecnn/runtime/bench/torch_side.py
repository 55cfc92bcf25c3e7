"""The PyTorch eager baseline: the exported file's model, rebuilt from its card, timed beside onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.card import ModelCard
from ...core.errors import InputError
from .inputs import _hw_from_card
from .timing import _Contestant


def _arch_options(card: ModelCard, path: Path) -> dict:
    """Builder options (``width_mult`` …) of the exported model: the card's ``extra["arch_options"]``, else
    the ``manifest.json`` that ``edgecnn export`` writes beside its artifacts, else none (the spec's defaults)."""
    if isinstance(card.extra, dict) and isinstance(card.extra.get("arch_options"), dict):
        return dict(card.extra["arch_options"])
    manifest = path.parent / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
        if data.get("model") == card.model:
            return dict((data.get("options") or {}).get("arch_options") or {})
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return {}


def _torch_contestant(
    torch_mod, cache: dict, card: ModelCard | None, path: Path, batch: int, feeds: dict, input_size
) -> _Contestant:
    """The eager-model contestant for this file and batch; files of the same architecture share one.

    The model is built from the card (registry name, classes) and ``_arch_options`` with random weights:
    weights do not change the time a CNN takes.
    """
    if card is None:
        raise InputError(
            f"{path.name} carries no edgecnn card, so its PyTorch model is unknown; "
            "drop --torch or bench a file made by `edgecnn export`"
        )
    x = _torch_input(card, batch, feeds, input_size)
    arch = _arch_options(card, path)
    key = (card.model, card.num_classes, json.dumps(arch, sort_keys=True), x.shape)
    if key not in cache:
        from ...models import create_model

        model = create_model(card.model, num_classes=card.num_classes, **arch)
        xt = torch_mod.from_numpy(x)

        def run(model=model, xt=xt):
            with torch_mod.inference_mode():
                return model(xt)

        cache[key] = _Contestant(run, keep=model)
    return cache[key]


def _torch_input(card: ModelCard, batch: int, feeds: dict, input_size) -> np.ndarray:
    x = next(iter(feeds.values()))
    if card.layout == "NCHW" and x.dtype == np.float32:
        return x  # the very tensor onnxruntime gets
    hw = tuple(input_size) if input_size else _hw_from_card(card)
    shape = list(card.input_shape or [])
    channels = shape[1] if card.layout == "NCHW" and len(shape) > 1 else shape[-1] if shape else len(card.mean)
    channels = channels if isinstance(channels, int) else len(card.mean)
    return np.random.default_rng(0).standard_normal((batch, channels, *hw)).astype(np.float32)
