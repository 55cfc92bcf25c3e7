"""Portable operator forms for mobile providers: HardSwish/HardSigmoid as Add/Clip/Div, Flatten as Reshape.

``edgecnn.convert.int8.twin.int8_form`` rewrites the same two activations, differently and for another purpose:
``Add → Clip(0, 1/α) → Mul(α)`` with float32 constants and any HardSigmoid α/β, so the ``Mul(α)`` becomes an int8
dequantisation scale. Here the form must be ``Add → Clip(0, 6) → Div(6)`` in PyTorch's order of operations (the
Clip maps to NNAPI's RELU6), with constants in the graph's own float type (fp16 sources). They are kept apart.
"""

from __future__ import annotations

import numpy as np


def decompose_hard_activations(model) -> dict:
    """Rewrite ``HardSwish``/``HardSigmoid`` as elementwise ops mobile providers have, in place.

    ``HardSigmoid(x)`` with PyTorch's constants (alpha 1/6, beta 0.5) becomes ``Div(Clip(Add(x, 3), 0, 6), 6)``
    and ``HardSwish(x)`` becomes ``Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`` — PyTorch's own formulas, in its order
    of operations. Other HardSigmoid constants are left alone.

    Returns:
        ``{"HardSwish->Add/Clip/Mul/Div": n, "HardSigmoid->Add/Clip/Div": m}``.
    """
    import onnx
    from onnx import helper, numpy_helper

    counts = {"HardSwish->Add/Clip/Mul/Div": 0, "HardSigmoid->Add/Clip/Div": 0}
    targets = [n for n in model.graph.node if n.op_type in ("HardSwish", "HardSigmoid") and n.domain in ("", "ai.onnx")]
    if not targets:
        return counts
    types = _elem_types(model)
    consts: dict[tuple, str] = {}

    def const(value: float, elem: int) -> str:
        key = (value, elem)
        if key not in consts:
            name = f"edgecnn_const_{'f16' if elem == onnx.TensorProto.FLOAT16 else 'f32'}_{value:g}"
            dtype = np.float16 if elem == onnx.TensorProto.FLOAT16 else np.float32
            model.graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
            consts[key] = name
        return consts[key]

    new_nodes = []
    for node in model.graph.node:
        elem = types.get(node.input[0], onnx.TensorProto.FLOAT) if node in targets else None
        if elem is None or not _pytorch_form(node, elem):
            new_nodes.append(node)  # not a target, or not PyTorch's constants / a float type: left alone
            continue
        x, out = node.input[0], node.output[0]
        base = node.name or out
        new_nodes.append(helper.make_node("Add", [x, const(3.0, elem)], [f"{base}/add3"], name=f"{base}/add3"))
        new_nodes.append(
            helper.make_node(
                "Clip", [f"{base}/add3", const(0.0, elem), const(6.0, elem)], [f"{base}/relu6"], name=f"{base}/relu6"
            )
        )
        if node.op_type == "HardSwish":
            new_nodes.append(helper.make_node("Mul", [x, f"{base}/relu6"], [f"{base}/mul"], name=f"{base}/mul"))
            new_nodes.append(helper.make_node("Div", [f"{base}/mul", const(6.0, elem)], [out], name=f"{base}/div6"))
            counts["HardSwish->Add/Clip/Mul/Div"] += 1
        else:
            new_nodes.append(helper.make_node("Div", [f"{base}/relu6", const(6.0, elem)], [out], name=f"{base}/div6"))
            counts["HardSigmoid->Add/Clip/Div"] += 1
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    return counts


def _pytorch_form(node, elem: int) -> bool:
    """Whether the node has PyTorch's hardsigmoid constants (HardSwish always) and a float32/float16 input."""
    import onnx
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "HardSigmoid" and (
        abs(attrs.get("alpha", 0.2) - 1 / 6) > 1e-6 or abs(attrs.get("beta", 0.5) - 0.5) > 1e-6
    ):
        return False  # not PyTorch's hardsigmoid: its constants would need another form
    return elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


def flatten_to_reshape(model) -> dict:
    """Rewrite ``Flatten`` as ``Reshape`` to a constant shape, in place, where the input shape is static.

    CoreML's MLProgram format has Reshape but no Flatten; NNAPI and CoreML NeuralNetwork have both.

    Returns:
        ``{"Flatten->Reshape": n}``.
    """
    import onnx
    from onnx import helper, numpy_helper

    count = 0
    shapes = _static_shapes(model)
    for i, node in enumerate(model.graph.node):
        if node.op_type != "Flatten" or node.domain not in ("", "ai.onnx") or node.input[0] not in shapes:
            continue
        dims = shapes[node.input[0]]
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1) % max(len(dims), 1)
        target = [int(np.prod(dims[:axis], dtype=np.int64)), int(np.prod(dims[axis:], dtype=np.int64))]
        name = f"{node.name or node.output[0]}/shape"
        model.graph.initializer.append(numpy_helper.from_array(np.array(target, dtype=np.int64), name))
        model.graph.node[i].CopyFrom(
            helper.make_node("Reshape", [node.input[0], name], list(node.output), name=node.name)
        )
        count += 1
    if count:
        onnx.checker.check_model(model)
    return {"Flatten->Reshape": count}


def _static_shapes(model) -> dict[str, list[int]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # no shapes, no rewrite
        return {}
    out = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = v.type.tensor_type.shape.dim if v.type.HasField("tensor_type") else []
        if dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            out[v.name] = [d.dim_value for d in dims]
    return out


def _elem_types(model) -> dict[str, int]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # types are a refinement (fp16 constants); float32 is the fallback
        return {}
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in values if v.type.HasField("tensor_type")}
