"""Per-channel int8 weights, computed with whole-array numpy instead of onnxruntime's per-channel loop.

onnxruntime's ``quantize_static(per_channel=True)`` computes each output channel's scale and quantizes each
channel's weights in a Python loop: 27,560 calls on ResNet50, 1.0–1.2 s of every quantization (measured: 1.6–1.8 s
per-channel against 0.5–0.6 s per-tensor), and the int8 step quantizes once per calibration method, fallback round
and float-stem candidate. ``to_per_channel`` takes the per-tensor QDQ model onnxruntime writes quickly and turns it
into the per-channel one it would have written, with the same arithmetic done on whole arrays:

* weight scale per channel: ``compute_scale_zp`` symmetric, ``2·max|w| / 254`` in float64 (``/ 128`` for 7-bit
  weights, onnxruntime's ``reduce_range``), stored as float32, 1.0 when below float32's smallest normal; zero point 0;
* the int32-bias adjustment: where ``input_scale · weight_scale`` is too small for the bias to fit an int32, that
  channel's weight scale grows by the ratio (``_adjust_weight_scale_for_int32_bias``, per-channel branch);
* weights ``round(w / s)`` in float32, clipped to int8; biases ``round(b / (input_scale · s · beta))`` in float64,
  clipped to int32; ``axis`` on both DequantizeLinear nodes.

The result is tested to be identical, initializer by initializer and node by node, to onnxruntime's own
per-channel output for the installed onnxruntime (tests/test_fast_quantize.py). Graphs with anything this does not
cover (MatMul or normalisation weights, shared weights, options that change the weight arithmetic) return None, and
the caller uses onnxruntime's per-channel path.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

# ops onnxruntime's QDQ quantizer can give per-channel weights that this module does not rewrite
_NOT_COVERED = frozenset(
    {
        "MatMul",
        "Einsum",
        "Attention",
        "LSTM",
        "GRU",
        "RNN",
        "LayerNormalization",
        "InstanceNormalization",
        "BatchNormalization",
        "GroupNormalization",
    }
)
_INT8_SYMMETRIC = 254.0  # qmax − qmin of symmetric int8 (−127 … 127)
_INT8_REDUCED = 128.0  # qmax − qmin of reduce_range int8 (−64 … 64): 7-bit weights
_INT32_RANGE = float(np.iinfo(np.int32).max) - float(np.iinfo(np.int32).min + 1)


def full_range_weights(twin: onnx.ModelProto) -> set[str]:
    """The weights that keep 8 bits when the rest are 7-bit (``reduce_range``): those of depthwise convolutions.
    onnxruntime's int8 depthwise kernel accumulates each product in int32, so 8-bit weights cannot saturate it
    (measured: ±127 weights × activations at 255, exact); only its GEMM kernels, which every other Conv and Gemm
    runs on, add pairs in int16. Depthwise layers have 9 or 25 taps per channel and need the 8th bit most."""
    inits = {i.name: i for i in twin.graph.initializer}
    out = set()
    for node in twin.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        group = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
        dims = inits[node.input[1]].dims
        if group > 1 and len(dims) >= 2 and dims[1] == 1 and dims[0] == group:
            out.add(node.input[1])
    return out


def full_range_overrides(twin: onnx.ModelProto) -> dict:
    """onnxruntime ``extra_options`` that keep ``full_range_weights`` at 8 bits, per channel (axis 0), when the
    quantizer runs with ``reduce_range``: what ``to_per_channel(reduce_range=True)`` reproduces."""
    full = full_range_weights(twin)
    return {"TensorQuantOverrides": {w: [{"reduce_range": False, "axis": 0}] for w in sorted(full)}} if full else {}


def covered(twin: onnx.ModelProto) -> bool:
    """Whether ``to_per_channel`` can produce onnxruntime's per-channel form of ``twin`` once quantized."""
    return not any(n.op_type in _NOT_COVERED for n in twin.graph.node)


def to_per_channel(qmodel: onnx.ModelProto, twin: onnx.ModelProto, *, reduce_range: bool = False) -> int | None:
    """Rewrite the per-tensor S8 weights (and their int32 biases) of ``qmodel``, the QDQ model onnxruntime
    quantized from ``twin`` (with the same ``reduce_range``, and ``full_range_weights`` kept at 8 bits), to
    per-channel, in place. Returns how many weights were rewritten, or None (``qmodel`` untouched) when the graph
    holds something this does not cover."""
    if not covered(twin):
        return None
    inits = {i.name: i for i in qmodel.graph.initializer}
    floats = {i.name: i for i in twin.graph.initializer}
    plan = _plan(qmodel.graph, twin, inits, floats)
    if plan is None:
        return None
    full = full_range_weights(twin) if reduce_range else set()
    for node, tnode, wdq, xdq, bdq, attrs, axis in plan:
        reduced = reduce_range and tnode.input[1] not in full
        _rewrite(node, tnode, wdq, xdq, bdq, attrs, axis, inits, floats, reduced)
    return len(plan)


def _plan(graph: onnx.GraphProto, twin: onnx.ModelProto, inits: dict, floats: dict) -> list | None:
    """For each int8 weight: (node, twin node, weight/input/bias DequantizeLinear, attributes, channel axis);
    None when one of them has a shape this module does not rewrite (onnxruntime's own path is taken)."""
    twin_nodes = {n.name: n for n in twin.graph.node}
    producer = {o: n for n in graph.node for o in n.output}
    readers = defaultdict(int)
    for n in graph.node:
        for i in n.input:
            readers[i] += 1
    plan = []
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm") or len(node.input) < 2:
            continue
        wdq = producer.get(node.input[1])
        if wdq is None or wdq.op_type != "DequantizeLinear" or wdq.input[0] not in inits:
            continue  # a float weight (a node kept in float): nothing to do
        tnode = twin_nodes.get(node.name)
        if (
            tnode is None
            or tnode.input[1] not in floats
            or readers[wdq.output[0]] != 1
            or inits[wdq.input[0]].data_type != onnx.TensorProto.INT8
        ):
            return None
        xdq = producer.get(node.input[0])
        bdq = producer.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if bdq is not None and (
            bdq.op_type != "DequantizeLinear"
            or readers[bdq.output[0]] != 1
            or len(tnode.input) < 3
            or tnode.input[2] not in floats
        ):
            return None
        if bdq is not None and (xdq is None or xdq.op_type != "DequantizeLinear" or xdq.input[1] not in inits):
            return None
        attrs = {a.name: helper.get_attribute_value(a) for a in tnode.attribute}
        axis = {"Conv": 0, "ConvTranspose": 1}.get(node.op_type, 0 if attrs.get("transB", 0) else 1)
        dims = floats[tnode.input[1]].dims
        if bdq is not None and list(floats[tnode.input[2]].dims) != [dims[axis]]:
            return None  # e.g. a grouped ConvTranspose: fewer weight channels than biases
        plan.append((node, tnode, wdq, xdq, bdq, attrs, axis))
    return plan


def _rewrite(node, tnode, wdq, xdq, bdq, attrs: dict, axis: int, inits: dict, floats: dict, reduced: bool) -> None:
    """One weight (and its bias) re-quantized per channel from its float values, in place."""
    w = numpy_helper.to_array(floats[tnode.input[1]])
    scale = _weight_scales(w, axis, _INT8_REDUCED if reduced else _INT8_SYMMETRIC)
    if bdq is not None:
        bias = numpy_helper.to_array(floats[tnode.input[2]])
        x_scale = numpy_helper.to_array(inits[xdq.input[1]]).astype(np.float32)
        scale = _fit_int32_bias(scale, bias, x_scale)
        beta = float(attrs.get("beta", 1.0)) if node.op_type == "Gemm" else 1.0
        b_scale = x_scale * scale * beta
        q_bias = np.clip(
            (bias.astype(np.float64) / b_scale.astype(np.float64)).round(),
            np.float64(np.iinfo(np.int32).min),
            np.float64(np.iinfo(np.int32).max),
        ).astype(np.int32)
        _replace(inits, bdq.input[0], q_bias.reshape(bias.shape))
        _replace(inits, bdq.input[1], b_scale.astype(np.float32))
        _replace(inits, bdq.input[2], np.zeros(len(scale), np.int32))
        _set_axis(bdq, 0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip((w.astype(np.float32) / scale.reshape(shape)).round(), -128, 127).astype(np.int8)
    _replace(inits, wdq.input[0], q)
    _replace(inits, wdq.input[1], scale)
    _replace(inits, wdq.input[2], np.zeros(len(scale), np.int8))
    _set_axis(wdq, axis)


def _weight_scales(w: np.ndarray, axis: int, qrange: float) -> np.ndarray:
    """onnxruntime's symmetric int8 scale of each slice of ``w`` along ``axis`` (compute_scale_zp), for a
    quantized range of ``qrange`` levels."""
    rows = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    zero = np.array(0, dtype=w.dtype)
    absmax = np.maximum(np.abs(np.minimum(rows.min(axis=1), zero)), np.abs(np.maximum(rows.max(axis=1), zero)))
    scale = (absmax.astype(np.float64) - (-absmax).astype(np.float64)) / qrange
    stored = scale.astype(np.float32)
    stored[scale < np.finfo(np.float32).tiny] = 1.0
    return stored


def _fit_int32_bias(scale: np.ndarray, bias: np.ndarray, x_scale: np.ndarray) -> np.ndarray:
    """Grow the channels' weight scales whose bias scale (input · weight) would overflow an int32 bias."""
    smallest = 1.0001 * (2.0 * np.abs(bias.astype(np.float32))) / np.float64(_INT32_RANGE)
    candidate = np.float64(x_scale.item()) * scale.astype(np.float64)
    small = (candidate < smallest) & (candidate > 0.0)
    if small.any():
        scale = scale.copy()
        scale[small] = (scale.astype(np.float64)[small] * (smallest[small] / candidate[small])).astype(np.float32)
    return scale


def _replace(inits: dict, name: str, value: np.ndarray) -> None:
    inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))


def _set_axis(node: onnx.NodeProto, axis: int) -> None:
    for a in node.attribute:
        if a.name == "axis":
            a.i = axis
            return
    node.attribute.append(helper.make_attribute("axis", axis))
