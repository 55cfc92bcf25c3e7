"""The PyTorch eager model as a ``Runner`` (``runtime.runner``): what ``bench --torch`` times beside the ONNX file.

It lives on the torch side and registers itself with the runner factory, so ``runtime/`` never imports torch:
call ``register()`` once (the CLI does before ``bench --torch``; ``benchmark_many(torch_baseline=True)`` asks for
it), then ``open_runner(path, runtime="torch", extra={"card": card, "arch_options": {...}})`` builds the file's
model from its card (registry name, classes) with random weights: weights do not change the time a CNN takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..core.card import ModelCard
from ..core.errors import InputError
from ..runtime.runner import IOSpec, Runner, RunnerOptions, register_runtime

NAME = "torch"


class TorchRunner(Runner):
    """An edgecnn model in PyTorch eager mode, on the CPU, under ``torch.inference_mode``.

    ``threads`` sets ``torch.set_num_threads`` while the runner is open; ``close`` restores the count before it.
    """

    runtime = NAME

    def __init__(self, card: ModelCard, arch_options: Mapping, threads: int | None) -> None:
        from ..models import create_model

        self._threads_before = torch.get_num_threads()
        if threads:
            torch.set_num_threads(int(threads))
        self.model = create_model(card.model, num_classes=card.num_classes, **dict(arch_options))
        self.inputs = (IOSpec("input", tuple(card.input_shape or ()), np.dtype(np.float32), "tensor(float)"),)
        self.outputs = (IOSpec(card.output_name or "logits", (), np.dtype(np.float32), "tensor(float)"),)
        self.metadata = card.to_metadata()

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """The one output (``outputs`` is not needed: the model has one)."""
        x = torch.from_numpy(np.ascontiguousarray(next(iter(feeds.values()))))
        with torch.inference_mode():
            return [self.model(x).numpy()]

    def bind(self, feeds: Mapping[str, np.ndarray]):
        model, xt = self.model, torch.from_numpy(next(iter(feeds.values())))  # made once, outside the timed call

        def run():
            with torch.inference_mode():
                return model(xt)

        return run

    def info(self) -> dict:
        return {
            "runtime": NAME,
            "providers": [],
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "backend": "pytorch eager",
            "version": torch.__version__,
        }

    def close(self) -> None:
        torch.set_num_threads(self._threads_before)


def open_torch(source, options: RunnerOptions) -> TorchRunner:
    """The ``torch`` opener: the card from ``options.extra["card"]`` (else read from the file), the builder
    options from ``options.extra["arch_options"]``."""
    card = options.extra.get("card")
    if card is None and not isinstance(source, bytes):
        import onnx

        model = onnx.load(str(source), load_external_data=False)
        card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props}, str(source))
    if card is None:
        raise InputError("the model carries no edgecnn card, so its PyTorch model is unknown")
    return TorchRunner(card, options.extra.get("arch_options") or {}, options.threads)


def register() -> None:
    """Make ``open_runner(..., runtime="torch")`` and ``bench --torch`` available (idempotent)."""
    register_runtime(NAME, open_torch)
