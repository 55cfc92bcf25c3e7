"""Per-layer int8 sensitivity: SQNR of every quantized tensor against fp32, and the dB each node loses."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx

from ...runtime.compare import sqnr_db
from .agreement import iter_outputs
from .twin import SCALE_SUFFIX

SENSITIVITY_IMAGES = 8  # images the per-layer SQNR is measured on
_ACTIVATIONS = ("Relu", "Clip")

# ---------------------------------------------------------------------------------------------- sensitivity


@dataclass(frozen=True)
class LayerSensitivity:
    """One quantized node: how much quantization error it adds, in dB of SQNR against fp32."""

    node: str
    op_type: str
    sqnr_db: float  # its output in the int8 model vs fp32 (all error accumulated up to here)
    input_sqnr_db: float  # its worst activation input's
    loss_db: float  # input_sqnr_db − sqnr_db: the error this node adds (weights, output rounding)
    weight_sqnr_db: float | None = None  # its weights after int8 rounding vs fp32 (Conv/Gemm)

    def to_dict(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def layer_sensitivity(
    twin_path: str | Path,
    qdq_path: str | Path,
    arrays: np.ndarray,
    *,
    input_name: str = "input",
    batch: int | None = None,
) -> tuple[LayerSensitivity, ...]:
    """Per-node SQNR of the QDQ model ``qdq_path`` against the float graph it was quantized from.

    Every dequantized activation of the QDQ model is paired with the float tensor it stands for in
    ``twin_path`` (by the consumer that reads it), both graphs are run with every such tensor as an output,
    and signal/noise power is summed over ``arrays``. Both run at the basic optimization level: onnxruntime's
    int8 fusions would hide the tensors, and a QDQ graph computes in float what the int8 kernels compute in
    integers (they differ by rounding, not by the quantization error measured here).

    Returns:
        Quantized nodes, most sensitive (largest ``loss_db``) first.
    """
    twin, qdq = onnx.load(str(twin_path)), onnx.load(str(qdq_path))
    pairs = dequantized_pairs(twin, qdq)  # twin tensor -> QDQ tensor
    if not pairs:
        return ()
    sqnr = _tensor_sqnr(twin, qdq, pairs, arrays, input_name=input_name, batch=batch)
    result = _per_node(twin, qdq, sqnr, _weight_sqnr(twin, qdq))
    result.sort(key=lambda s: (-s.loss_db, s.sqnr_db))
    return tuple(result)


def _tensor_sqnr(twin, qdq, pairs: dict, arrays: np.ndarray, *, input_name: str, batch: int | None) -> dict:
    """twin tensor → SQNR of its dequantized int8 value against it, signal and noise summed over ``arrays``."""
    twin_names, q_names = list(pairs), [pairs[t] for t in pairs]
    signal: dict = defaultdict(float)
    noise: dict = defaultdict(float)
    with tempfile.TemporaryDirectory(prefix="edgecnn-sens-") as tmp:
        fa, qa = Path(tmp) / "twin.onnx", Path(tmp) / "qdq.onnx"
        _save_with_outputs(twin, twin_names, fa)
        _save_with_outputs(qdq, q_names, qa)
        # One image at a time: every intermediate tensor of a 224² U-Net is ~200 MB per image.
        kw = dict(input_name=input_name, batch=batch, level="basic", step=1)
        for ref, out in zip(
            iter_outputs(fa, arrays, outputs=twin_names, **kw), iter_outputs(qa, arrays, outputs=q_names, **kw)
        ):
            for t, r, o in zip(twin_names, ref, out):
                r64 = r.astype(np.float64)
                signal[t] += float((r64**2).sum())
                noise[t] += float(((r64 - o.astype(np.float64)) ** 2).sum())
    return {t: sqnr_db(signal[t], noise[t]) for t in twin_names}


def _per_node(twin: onnx.ModelProto, qdq: onnx.ModelProto, sqnr: dict, weights: dict) -> list[LayerSensitivity]:
    """Each quantized node's output SQNR, its worst input's, and the dB lost between them."""
    q_nodes = {n.name for n in qdq.graph.node}
    consumers = defaultdict(list)
    for n in twin.graph.node:
        for i in n.input:
            consumers[i].append(n)
    result = []
    for node in twin.graph.node:
        if node.name not in q_nodes or not node.output:
            continue
        out_t = node.output[0]
        while (
            out_t not in sqnr
            and len(consumers[out_t]) == 1
            and (consumers[out_t][0].op_type in _ACTIVATIONS or consumers[out_t][0].name.endswith(SCALE_SUFFIX))
        ):
            out_t = consumers[out_t][0].output[0]  # the quantizer absorbed this activation into the output's Q
        ins = [sqnr[i] for i in node.input if i in sqnr]
        if out_t not in sqnr or not ins:
            continue
        worst_in = min(ins)
        result.append(
            LayerSensitivity(
                node.name, node.op_type, sqnr[out_t], worst_in, max(0.0, worst_in - sqnr[out_t]), weights.get(node.name)
            )
        )
    return result


def dequantized_pairs(twin: onnx.ModelProto, qdq: onnx.ModelProto) -> dict:
    """twin tensor name → QDQ tensor that holds its dequantized int8 value."""
    inits = {i.name for i in qdq.graph.initializer}
    producer = {o: n for n in qdq.graph.node for o in n.output}
    twin_nodes = {n.name: n for n in twin.graph.node}
    twin_tensors = {o for n in twin.graph.node for o in n.output} | {i.name for i in twin.graph.input}
    graph_outputs = {o.name for o in qdq.graph.output}
    pairs = {}
    for node in qdq.graph.node:
        for idx, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] in inits:
                continue
            tnode = twin_nodes.get(node.name)
            if tnode is None or idx >= len(tnode.input) or node.op_type == "QuantizeLinear":
                continue
            t = tnode.input[idx]
            if t in twin_tensors and t not in pairs:
                pairs[t] = name
    for node in qdq.graph.node:  # dequantized graph outputs keep their own name
        if node.op_type == "DequantizeLinear" and node.output[0] in graph_outputs and node.output[0] in twin_tensors:
            pairs.setdefault(node.output[0], node.output[0])
    return pairs


def _save_with_outputs(model: onnx.ModelProto, names: list, path: Path) -> None:
    from onnx import helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names if n not in present
    )
    onnx.save(model, str(path))


def _weight_sqnr(twin: onnx.ModelProto, qdq: onnx.ModelProto) -> dict:
    """node name → SQNR of its int8-rounded weight (input 1) against the float weight."""
    from onnx import helper, numpy_helper

    twin_inits = {i.name: i for i in twin.graph.initializer}
    inits = {i.name: i for i in qdq.graph.initializer}
    producer = {o: n for n in qdq.graph.node for o in n.output}
    twin_nodes = {n.name: n for n in twin.graph.node}
    out = {}
    for node in qdq.graph.node:
        if node.op_type not in ("Conv", "Gemm", "ConvTranspose", "MatMul") or len(node.input) < 2:
            continue
        tnode, dq = twin_nodes.get(node.name), producer.get(node.input[1])
        if tnode is None or dq is None or dq.op_type != "DequantizeLinear" or tnode.input[1] not in twin_inits:
            continue
        if any(i not in inits for i in dq.input if i):
            continue
        w = numpy_helper.to_array(twin_inits[tnode.input[1]]).astype(np.float64)
        q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
        s = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        z = numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64) if len(dq.input) > 2 and dq.input[2] else 0.0
        if q.shape != w.shape:
            continue
        if np.ndim(s) == 1 and s.size > 1:
            axis = next((helper.get_attribute_value(a) for a in dq.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            shape[axis] = -1
            s = s.reshape(shape)
            z = np.reshape(z, shape) if np.ndim(z) == 1 and np.size(z) > 1 else z
        deq = (q - z) * s
        out[node.name] = sqnr_db(float((w**2).sum()), float(((w - deq) ** 2).sum()))
    return out
