"""PyTorch → ONNX through torch.onnx's dynamo exporter, as one self-contained file.

Shapes: the batch axis is dynamic by default (or fixed); height/width stay static for classifiers,
because AdaptiveAvgPool2d with dynamic H/W exports to a graph that runs silently wrong in onnxruntime.
Only architectures without adaptive pooling (U-Net) may take dynamic H/W, in multiples of their stride.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..core.errors import EdgeCNNError
from .options import OPSETS

SUPPORTED_OPSETS = OPSETS  # the dynamo exporter emits ≥ 18; 18–21 are tested with onnxsim and the quantizer
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def check_opset(opset: int) -> None:
    if opset not in SUPPORTED_OPSETS:
        raise EdgeCNNError(f"opset {opset} is not supported; use {SUPPORTED_OPSETS.start}–{SUPPORTED_OPSETS.stop - 1} "
                           "(the dynamo exporter cannot go below 18)")


def export_onnx(model: nn.Module, path: str | Path, *, input_shape: tuple[int, int, int], batch: int | None = None,
                dynamic_hw: bool = False, size_multiple: int = 1, opset: int = 18) -> None:
    """Export ``model`` (eval mode) to ``path``.

    Args:
        input_shape: ``(C, H, W)`` of the example input.
        batch: a fixed batch size, or ``None`` for a dynamic batch axis named ``batch``.
        dynamic_hw: make H and W dynamic (multiples of ``size_multiple``), named ``height``/``width``.
        opset: ONNX opset of the default domain.
    """
    check_opset(opset)
    c, h, w = input_shape
    example = torch.zeros(batch or 2, c, h, w)  # batch 2 so the exporter cannot specialise the batch axis to 1
    dims: dict[int, object] = {}
    if batch is None:
        dims[0] = torch.export.Dim("batch", min=1, max=4096)
    if dynamic_hw:
        # H = size_multiple × k keeps every pooling stage exact, so no shape arithmetic lands in the graph.
        dims[2] = size_multiple * torch.export.Dim("h_blocks", min=1, max=8192 // size_multiple)
        dims[3] = size_multiple * torch.export.Dim("w_blocks", min=1, max=8192 // size_multiple)
    # The exporter prints progress lines and warnings of its own; keep them out of the user's terminal.
    sink = io.StringIO()
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(), (example,), str(path), dynamo=True, external_data=False, opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: dims[0]} | {k: v for k, v in dims.items() if k != 0},) if dims else None,
                verbose=False,
            )
    finally:
        torch_logger.setLevel(level)  # restored even when the exporter raises
    _name_dynamic_axes(Path(path), batch is None, dynamic_hw)


def _name_dynamic_axes(path: Path, dynamic_batch: bool, dynamic_hw: bool) -> None:
    """Give dynamic axes readable names (``batch``, ``height``, ``width``) on the graph's input and output."""
    import onnx

    model = onnx.load(str(path))
    names = {0: "batch"} if dynamic_batch else {}
    if dynamic_hw:
        names.update({2: "height", 3: "width"})
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, name in names.items():
            if axis < len(dims) and not dims[axis].HasField("dim_value"):
                dims[axis].dim_param = name
    onnx.save(model, str(path))


def recalibrate_batchnorm(model: nn.Module, batches: list[torch.Tensor]) -> int:
    """Re-estimate every BatchNorm's running statistics on ``batches``; returns how many layers were reset.

    Random-init models in eval mode are degenerate (BN statistics at their defaults make outputs nearly
    constant), so parity measured on them proves little. Running real inputs through the model in training
    mode with a cumulative average gives statistics — and so outputs — that vary with the input like a trained
    model's do. Dropout stays in eval mode, and each layer keeps its own momentum afterwards.

    The statistics equal ``torch.optim.swa_utils.update_bn``'s (tested); that is not used because it puts the
    whole model in training mode, and dropout or stochastic depth ahead of a BatchNorm would change them.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]  # each layer's own (MobileNetV3's 0.01), restored afterwards
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average over all batches
        bn.train()
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.eval()
    return len(bns)
