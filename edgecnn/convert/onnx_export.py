"""PyTorch → ONNX through torch.onnx's dynamo exporter, as one self-contained file.

Shapes: the batch axis is dynamic by default (or fixed); height/width stay static for classifiers,
because AdaptiveAvgPool2d with dynamic H/W exports to a graph that runs silently wrong in onnxruntime.
Only architectures without adaptive pooling (U-Net) may take dynamic H/W, in multiples of their stride.

Speed: tracing with a symbolic batch costs the exporter 2× the time of a static trace (measured: MobileNetV2
7.0 vs 3.1 CPU-s), most of it spent decomposing in-place activations symbolically. So a classifier is traced
at a static batch and its batch axis made dynamic in the graph afterwards (``make_batch_dynamic``); the
result is proven by running it at two batch sizes against the static trace, and the symbolic trace is the
fallback when that proof fails. Symbolic traces (U-Net's dynamic H/W) run with in-place activations off.

The exporter's time grows with the number of operators it decomposes and translates, so each Conv→BatchNorm pair
is folded into the conv before tracing (``fold_batchnorm``): the graph onnxsim would produce from the unfolded trace,
in less than half the time (measured: ResNet50 2.4–2.6 s against 3.9–6.3 s, MobileNetV2 2.1–2.9 against 3.1–4.5).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..core.errors import EdgeCNNError
from .options import OPSETS

SUPPORTED_OPSETS = OPSETS  # the dynamo exporter emits ≥ 18; 18–21 are tested with onnxsim and the quantizer
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def check_opset(opset: int) -> None:
    if opset not in SUPPORTED_OPSETS:
        raise EdgeCNNError(
            f"opset {opset} is not supported; use {SUPPORTED_OPSETS.start}–{SUPPORTED_OPSETS.stop - 1} "
            "(the dynamo exporter cannot go below 18)"
        )


STATIC_TRACE_BATCH = 2  # not 1: a batch of 1 lets the tracer treat the axis as broadcastable


@dataclass(frozen=True)
class Exported:
    """How ``export_onnx`` made the graph."""

    batch_axis: str  # "fixed", "static trace, made dynamic" or "symbolic trace"
    folded_batchnorms: int  # BatchNorm layers folded into the convs before them, ahead of tracing


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_shape: tuple[int, int, int],
    batch: int | None = None,
    dynamic_hw: bool = False,
    size_multiple: int = 1,
    opset: int = 18,
    fold_bn: bool = True,
) -> Exported:
    """Export ``model`` (eval mode) to ``path``; returns how the batch axis was made and what was folded.

    Args:
        input_shape: ``(C, H, W)`` of the example input.
        batch: a fixed batch size, or ``None`` for a dynamic batch axis named ``batch``.
        dynamic_hw: make H and W dynamic (multiples of ``size_multiple``), named ``height``/``width``.
        opset: ONNX opset of the default domain.
        fold_bn: trace a copy with each Conv→BatchNorm pair folded (``model`` itself is left as it is).
    """
    check_opset(opset)
    c, h, w = input_shape
    traced, folded = fold_batchnorm(model.eval()) if fold_bn else (model, 0)
    if batch is not None:
        _trace(traced, path, torch.zeros(batch, c, h, w), None, opset)
        return Exported("fixed", folded)
    # A static trace made dynamic afterwards is 2.5× quicker than a symbolic trace (U-Net at 32 px: 4.5 s against
    # 11.1 s); it is kept when the rewritten graph is proven (see make_batch_dynamic, make_hw_dynamic) — H/W against
    # the unfolded model itself.
    _trace(traced, path, torch.zeros(STATIC_TRACE_BATCH, c, h, w), None, opset)
    if make_batch_dynamic(Path(path), STATIC_TRACE_BATCH) and (
        not dynamic_hw or make_hw_dynamic(Path(path), model, size_multiple)
    ):
        return Exported("static trace, made dynamic", folded)
    dims: dict[int, object] = {0: torch.export.Dim("batch", min=1, max=4096)}
    if dynamic_hw:
        # H = size_multiple × k keeps every pooling stage exact, so no shape arithmetic lands in the graph.
        dims[2] = size_multiple * torch.export.Dim("h_blocks", min=1, max=8192 // size_multiple)
        dims[3] = size_multiple * torch.export.Dim("w_blocks", min=1, max=8192 // size_multiple)
    with _no_inplace(traced):
        # batch 2 so the exporter cannot specialise the batch axis to 1
        _trace(traced, path, torch.zeros(2, c, h, w), (dims,), opset)
    _name_dynamic_axes(Path(path), True, dynamic_hw)
    return Exported("symbolic trace", folded)


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of eval-mode ``model`` with every BatchNorm that directly follows a conv (or linear layer) folded
    into it, and how many were folded: ``torch.fx``'s ``fuse`` (a BatchNorm whose conv output has other readers
    is kept). The same function in eval mode, up to float rounding; ``model`` is left as it is. A model that
    ``torch.fx`` cannot trace symbolically is returned as it is, with 0."""
    from torch.fx.experimental.optimization import fuse

    def count(m: nn.Module) -> int:
        return sum(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())

    before = count(model)
    if not before:
        return model, 0
    try:
        fused = fuse(model.eval())  # traces a deep copy
    except Exception:  # data-dependent control flow and the like: trace the model itself
        return model, 0
    return fused.eval(), before - count(fused)


def _trace(model: nn.Module, path, example: torch.Tensor, dynamic_shapes, opset: int) -> None:
    # The exporter prints progress lines and warnings of its own; keep them out of the user's terminal.
    sink = io.StringIO()
    torch_logger = logging.getLogger("torch")
    level = torch_logger.level
    torch_logger.setLevel(logging.ERROR)  # e.g. "torchvision is not installed. Skipping torchvision::nms"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.eval(),
                (example,),
                str(path),
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    finally:
        torch_logger.setLevel(level)  # restored even when the exporter raises


@contextlib.contextmanager
def _no_inplace(model: nn.Module):
    """In-place activations off while tracing symbolically (same outputs; their symbolic decomposition is what
    makes a dynamic trace slow), restored afterwards."""
    flagged = [m for m in model.modules() if getattr(m, "inplace", None) is True]
    for m in flagged:
        m.inplace = False
    try:
        yield
    finally:
        for m in flagged:
            m.inplace = True


def make_batch_dynamic(path: Path, traced_batch: int) -> bool:
    """Turn a graph traced at batch ``traced_batch`` into one with a dynamic ``batch`` axis, in place.

    The only batch-dependent constants a convnet's static trace holds are the leading entries of Reshape
    shapes (flatten before the classifier); they become -1 (or 0, "copy the input's dimension"). Then the graph is
    proven: run at batch 1 and at batch 3 it must equal itself at the traced batch — what the trace computes —
    row for row (up to kernel choice: 1e-5 relative). Returns False, leaving the file as traced, when any check fails.
    """
    import onnx

    model = onnx.load(str(path))
    if not _free_batch(model.graph, traced_batch):
        return False
    dynamic_bytes = model.SerializeToString()
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    if not _same_at_any_batch(dynamic_bytes, shape, traced_batch):
        return False
    Path(path).write_bytes(dynamic_bytes)
    return True


def _free_batch(graph, traced_batch: int) -> bool:
    """Rewrite ``graph``'s Reshape shapes and its inputs'/outputs' first axis to a dynamic batch, in place;
    False when it holds shape arithmetic this does not rewrite (the symbolic trace handles those)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    for node in graph.node:
        if node.op_type in ("Expand", "Tile", "ConstantOfShape", "Range"):
            return False  # shape arithmetic we do not rewrite: let the symbolic trace handle it
        if node.op_type == "Reshape" and node.input[1] in inits:
            shape = numpy_helper.to_array(inits[node.input[1]]).copy()
            if shape.ndim != 1 or len(shape) == 0 or int(shape[0]) not in (traced_batch, 0, -1):
                return False
            if int(shape[0]) == traced_batch:
                # -1 when it is free (the exporter sets allowzero=1, under which 0 means a zero-sized axis)
                if -1 in shape.tolist():
                    shape[0] = 0
                    for attr in node.attribute:
                        if attr.name == "allowzero":
                            attr.i = 0
                else:
                    shape[0] = -1
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
        elif node.op_type == "Reshape":
            return False
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if not dims or dims[0].dim_value != traced_batch:
            return False
        dims[0].Clear()
        dims[0].dim_param = "batch"
    del graph.value_info[:]  # intermediate shapes were inferred at the traced batch
    return True


def _same_at_any_batch(dynamic_bytes: bytes, shape: list, traced_batch: int) -> bool:
    """Whether the rewritten graph computes, at batches 1 and the rest, what it computes at the traced batch."""
    import numpy as np

    try:
        # At the traced batch the rewritten graph computes what the trace did (a -1 or 0 there resolves to
        # the traced batch); at other batches it must agree with that row for row.
        run = _quiet_session(dynamic_bytes)
        # two traced batches' worth of images, run at the traced batch and again as 1 + the rest: batches no Reshape
        # left fixed to the traced batch could give
        x = np.random.default_rng(0).standard_normal((2 * traced_batch, *shape)).astype(np.float32)
        want = np.concatenate([run(x[i : i + traced_batch]) for i in range(0, len(x), traced_batch)])
        got = np.concatenate([run(x[:1]), run(x[1:])])
    except Exception:  # onnxruntime rejects the rewritten graph: keep the traced one, trace symbolically
        return False
    scale = float(np.abs(want).max()) or 1.0
    return got.shape == want.shape and float(np.abs(got - want).max()) <= 1e-5 * scale


# Ops that compute the same function at any height and width (no size in their attributes or inputs); Resize
# qualifies only with scales, not sizes. Anything else in the graph leaves H/W to the symbolic trace.
_SIZE_FREE_OPS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Clip",
        "HardSwish",
        "HardSigmoid",
        "MaxPool",
        "AveragePool",
        "BatchNormalization",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Concat",
        "Resize",
        "Identity",
    }
)


def make_hw_dynamic(path: Path, model: nn.Module, size_multiple: int) -> bool:
    """Make H and W of a graph with a dynamic batch (``make_batch_dynamic``) dynamic too, in place: the graph
    traced at one size, its ``height``/``width`` axes freed, then proven against ``model`` at another size
    (multiples of ``size_multiple``): same shape, and equal within 1e-4 of the output's scale. Returns False,
    leaving the file as it was, when an op could depend on the size or the proof fails."""
    import numpy as np
    import onnx

    onnx_model = onnx.load(str(path))
    graph = onnx_model.graph
    for node in graph.node:
        if node.op_type not in _SIZE_FREE_OPS:
            return False
        if node.op_type == "Resize" and (
            len(node.input) < 3 or not node.input[2] or (len(node.input) > 3 and node.input[3])
        ):
            return False  # sizes, not scales: a fixed output size
        if node.op_type == "Concat" and any(a.name == "axis" and a.i not in (1, -3) for a in node.attribute):
            return False
    for value in list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) != 4:
            return False
        for axis, name in ((2, "height"), (3, "width")):
            dims[axis].Clear()
            dims[axis].dim_param = name
    del graph.value_info[:]
    dynamic_bytes = onnx_model.SerializeToString()

    c = graph.input[0].type.tensor_type.shape.dim[1].dim_value
    m = max(1, size_multiple)
    x = np.random.default_rng(1).standard_normal((2, c, 3 * m, 5 * m)).astype(np.float32)
    try:
        got = _quiet_session(dynamic_bytes)(x)
    except Exception:  # onnxruntime rejects the rewritten graph (a size baked in somewhere): trace symbolically
        return False
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(x)).numpy()
    scale = float(np.abs(want).max()) or 1.0
    if got.shape != want.shape or float(np.abs(got - want).max()) > 1e-4 * scale:
        return False
    Path(path).write_bytes(dynamic_bytes)
    return True


def _quiet_session(model_bytes: bytes):
    """A CPU runner on a rewritten graph, as a function of the input batch (its first output); a rejected rewrite is
    an expected outcome, not an error to print, so its runs log nothing below fatal."""
    import onnxruntime as ort

    from ..runtime.runner import open_runner

    session = open_runner(model_bytes, providers="cpu").session
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4
    return lambda x: session.run(None, {INPUT_NAME: x}, quiet)[0]


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


@contextlib.contextmanager
def channels_last(model: nn.Module):
    """The model's weights in NHWC while PyTorch itself runs it (BatchNorm re-estimation, the reference):
    oneDNN's NHWC kernels run these convnets 1.4× faster in eager mode (measured at batch 16: MobileNetV2
    0.67 vs 0.98 s, ResNet50 2.3 vs 2.9 s). Restored to the default layout before export, so the traced graph
    is the same; inputs are converted by ``to_channels_last``."""
    model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def to_channels_last(array) -> torch.Tensor:
    x = torch.from_numpy(array)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x
