"""The graph int8 is made from: onnxruntime's pre-processing (the "twin"), and the forms int8 kernels cover.

1. ``quantization_twin``: onnxruntime's shape inference. Its graph-optimisation pass is skipped on
   purpose: it inlines ``HardSwish`` into ``HardSigmoid`` + ``Mul`` (an ONNX function body), which costs an
   extra int8 multiply per activation and nothing else (measured: identical graphs otherwise for the zoo).
2. ``int8_form``: ``HardSwish``/``HardSigmoid`` have no int8 kernel in onnxruntime's CPU provider, so each one
   becomes a float island (DequantizeLinear → HardSigmoid → QuantizeLinear, four passes over the tensor).
   They are rewritten into ops that do have int8 kernels: ``HardSigmoid(x) = α·Clip(x + β/α, 0, 1/α)``, where
   the ``Clip`` is absorbed by the range of the int8 ``Add``'s output and the ``α`` multiply is folded into the
   next DequantizeLinear's scale (``fold_scales``, run after quantizing) — so hard-swish becomes QLinearAdd +
   QLinearMul, with no float round trip. This is what makes MobileNetV3 int8 faster than its fp32.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ort_tools import in_folder, quiet

SCALE_SUFFIX = "_edgecnn_scale"  # marks the α multiplies that fold_scales folds into a DequantizeLinear


def quantization_twin(src: str | Path, model: onnx.ModelProto | None = None) -> onnx.ModelProto:
    """onnxruntime's recommended pre-processing, with ONNX's own shape inference only, in memory.

    Its graph-optimisation pass is skipped: it would inline HardSwish (see the module docstring), and onnxsim has
    already folded constants and BatchNorms. Its symbolic shape inference is skipped too: our graphs have static
    H/W (or U-Net's named dynamic axes, on which it gives up), so ONNX's inference already gives every shape the
    quantizer reads — the quantized graphs are identical (ResNet50, EfficientNet-Lite0: same nodes, same
    initializers) and the step takes 0.96 instead of 2.41 CPU-s on ResNet50. What ``quant_pre_process`` then
    does (shape inference from file to file, then load and save) is done here on the loaded model, which saves
    ResNet50's 100 MB a write and a read. ``model``: ``src`` already loaded (it is marked in place).
    """
    from onnxruntime.quantization.quant_utils import add_pre_process_metadata

    model = model if model is not None else onnx.load(str(src))
    if shapes_complete(model):  # onnxsim's output already carries every shape (0.5 s saved on ResNet50)
        add_pre_process_metadata(model)
        return model
    if model.ByteSize() >= 2**31 - 2**24:  # protobuf's 2 GB limit: onnxruntime's file-to-file path
        with tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as scratch:
            path = Path(scratch) / "twin.onnx"
            preprocess_for_quantization(src, path)
            return onnx.load(str(path))
    model = onnx.shape_inference.infer_shapes(model)
    add_pre_process_metadata(model)
    return model


def shapes_complete(model: onnx.ModelProto) -> bool:
    """Whether every node output already has a typed shape (value_info or a graph output): shape inference would
    add nothing the quantizer reads."""
    graph = model.graph
    known = {
        v.name
        for v in list(graph.value_info) + list(graph.output)
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")
    }
    return all(o in known for n in graph.node for o in n.output if o)


def preprocess_for_quantization(src: str | Path, dst: str | Path) -> None:
    """``quantization_twin`` through onnxruntime's own ``quant_pre_process``, file to file (any model size)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).resolve(), Path(dst).resolve()
    # On failure the shape inferencer dumps its model (and external-data files) into the current directory; run
    # it from a scratch directory so nothing lands in the user's folder.
    with quiet(), tempfile.TemporaryDirectory(prefix="edgecnn-quant-") as scratch, in_folder(scratch):
        quant_pre_process(str(src), str(dst), skip_optimization=True, skip_onnx_shape=False, skip_symbolic_shape=True)


def int8_form(model: onnx.ModelProto, keep: tuple | set = ()) -> dict:
    """Rewrite HardSwish/HardSigmoid into Add → Clip → Mul(α) (→ Mul) in place, for int8 kernels to cover them.

    ``HardSigmoid(x; α, β) = clip(αx + β, 0, 1) = α · clip(x + β/α, 0, 1/α)`` (PyTorch's: α = 1/6, β = 1/2) and
    ``HardSwish(x) = x · HardSigmoid(x; 1/6, 1/2)``: exact in float. Nodes named in ``keep`` stay as they are.

    Returns:
        ``{"HardSwish": n, "HardSigmoid": m}``, how many of each were rewritten.
    """
    graph = model.graph
    counts = {"HardSwish": 0, "HardSigmoid": 0}
    nodes = []
    for i, node in enumerate(graph.node):
        if node.op_type not in counts or node.name in keep or (node.domain or "ai.onnx") != "ai.onnx":
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "HardSigmoid":
            alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
        else:
            alpha, beta = 1.0 / 6.0, 0.5
        if alpha <= 0:  # a non-positive slope cannot become a dequantization scale; leave it alone
            nodes.append(node)
            continue
        x, y = node.input[0], node.output[0]
        p = node.name or f"{node.op_type}_{i}"
        gate = y if node.op_type == "HardSigmoid" else f"{p}_gate"
        nodes += [
            helper.make_node("Add", [x, _const(graph, f"{p}_shift", beta / alpha)], [f"{p}_shifted"], name=f"{p}_add"),
            helper.make_node(
                "Clip",
                [f"{p}_shifted", _const(graph, f"{p}_lo", 0.0), _const(graph, f"{p}_hi", 1 / alpha)],
                [f"{p}_clipped"],
                name=f"{p}_clip",
            ),
            helper.make_node(
                "Mul", [f"{p}_clipped", _const(graph, f"{p}_alpha", alpha)], [gate], name=p + SCALE_SUFFIX
            ),
        ]
        if node.op_type == "HardSwish":
            nodes.append(helper.make_node("Mul", [x, gate], [y], name=f"{p}_mul"))
        counts[node.op_type] += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return counts


def _const(graph: onnx.GraphProto, name: str, value: float) -> str:
    graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
    return name


def fold_scales(model: onnx.ModelProto) -> int:
    """Fold each ``int8_form`` α multiply into a dequantization scale, in place; returns how many were folded.

    ``DQ(q; s, z) → Mul(α) → Q(s2, z2) → DQ(s2, z2) → consumers`` becomes ``DQ(q; s·α, z) → consumers``:
    exact, since α·s·(q − z) = (s·α)·(q − z), and it saves a full int8 pass over the tensor.
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    drop, folded = set(), 0
    for node in list(graph.node):
        if node.op_type != "Mul" or not node.name.endswith(SCALE_SUFFIX):
            continue
        dq = producer.get(node.input[0])
        alpha = _constant_value(node.input[1], inits, producer)
        after = consumers[node.output[0]]
        if (
            dq is None
            or dq.op_type != "DequantizeLinear"
            or alpha is None
            or alpha <= 0
            or len(after) != 1
            or after[0].op_type != "QuantizeLinear"
            or len(consumers[dq.output[0]]) != 1
            or dq.input[1] not in inits
        ):
            continue
        q2 = after[0]
        dq2s = consumers[q2.output[0]]
        if (
            not dq2s
            or any(d.op_type != "DequantizeLinear" for d in dq2s)
            or any(o.name == q2.output[0] for o in graph.output)
        ):
            continue
        scale = numpy_helper.to_array(inits[dq.input[1]])
        new_scale = numpy_helper.from_array((scale * alpha).astype(scale.dtype), f"{dq.input[1]}_x{folded}")
        graph.initializer.append(new_scale)
        for d2 in dq2s:
            d2.input[0] = dq.input[0]
            d2.input[1] = new_scale.name
            if len(d2.input) > 2:
                d2.input[2] = dq.input[2] if len(dq.input) > 2 else ""
        drop.update([id(node), id(q2), id(dq)])
        folded += 1
    kept = [n for n in graph.node if id(n) not in drop]
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def _constant_value(name: str, inits: dict, producer: dict) -> float | None:
    """The scalar value of an initializer, or of DequantizeLinear(initializer) (a quantized constant)."""
    if name in inits:
        arr = numpy_helper.to_array(inits[name])
        return float(arr.reshape(-1)[0]) if arr.size == 1 else None
    dq = producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear" or any(i not in inits for i in dq.input if i):
        return None
    q, s = numpy_helper.to_array(inits[dq.input[0]]), numpy_helper.to_array(inits[dq.input[1]])
    z = numpy_helper.to_array(inits[dq.input[2]]) if len(dq.input) > 2 and dq.input[2] else 0
    if q.size != 1:
        return None
    return float((q.astype(np.float64).reshape(-1)[0] - np.asarray(z, np.float64).reshape(-1)[0]) * s.reshape(-1)[0])
