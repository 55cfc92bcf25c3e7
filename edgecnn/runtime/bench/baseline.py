"""The eager baseline of ``bench --torch``, through the runner factory: the file's PyTorch model is a ``Runner`` of
the ``"torch"`` runtime, which the torch side registers (``edgecnn/convert/torch_runner.py``); this module, like all
of ``runtime/``, never imports torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...core.card import ModelCard
from ...core.errors import InputError
from ..runner import Runner, open_runner, runtimes
from .inputs import hw_from_card
from .timing import Contestant

TORCH = "torch"
NOT_REGISTERED = (
    "the PyTorch baseline needs the torch runner: call edgecnn.convert.torch_runner.register() first "
    '(it needs the export stack: pip install "edgecnn[export]")'
)


class Baseline:
    """The eager contestants of one benchmark: one runner per file, one contestant per architecture and input
    shape (files of the same model, fp32 and int8, share it), and torch's thread count restored at the end."""

    def __init__(self, threads: int | None) -> None:
        if TORCH not in runtimes():
            raise InputError(NOT_REGISTERED)
        self.threads = threads
        self.runners: list[Runner] = []
        self.contestants: dict = {}  # (model, classes, arch options, input shape) -> contestant

    def contestant(self, path: Path, card: ModelCard | None, batch: int, feeds: dict, input_size) -> Contestant:
        """The contestant for this file at this batch; a new one has ``runs == 0`` (not yet warmed up)."""
        if card is None:
            raise InputError(
                f"{path.name} carries no edgecnn card, so its PyTorch model is unknown; "
                "drop --torch or bench a file made by `edgecnn export`"
            )
        x = _torch_input(card, batch, feeds, input_size)
        arch = arch_options(card, path)
        key = (card.model, card.num_classes, json.dumps(arch, sort_keys=True), x.shape)
        if key not in self.contestants:
            # random weights: weights do not change the time a CNN takes
            extra = {"card": card, "arch_options": arch}
            runner = open_runner(path, runtime=TORCH, threads=self.threads, extra=extra)
            self.runners.append(runner)
            self.contestants[key] = Contestant(runner.bind({runner.inputs[0].name: x}), keep=runner)
        return self.contestants[key]

    def info(self) -> dict:
        """What the torch runners say (``version``, ``threads``), or ``{}`` before any was opened."""
        return self.runners[0].info() if self.runners else {}

    def close(self) -> None:
        for runner in reversed(self.runners):  # the first one opened knows torch's setting from before
            runner.close()


def arch_options(card: ModelCard, path: Path) -> dict:
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


def _torch_input(card: ModelCard, batch: int, feeds: dict, input_size) -> np.ndarray:
    x = next(iter(feeds.values()))
    if card.layout == "NCHW" and x.dtype == np.float32:
        return x  # the very tensor onnxruntime gets
    hw = tuple(input_size) if input_size else hw_from_card(card)
    shape = list(card.input_shape or [])
    channels = shape[1] if card.layout == "NCHW" and len(shape) > 1 else shape[-1] if shape else len(card.mean)
    channels = channels if isinstance(channels, int) else len(card.mean)
    return np.random.default_rng(0).standard_normal((batch, channels, *hw)).astype(np.float32)
