"""Fixing every shape of a graph: choosing the input shape, fixing it, folding what became constant."""

from __future__ import annotations

from ...core.card import ModelCard
from ...core.errors import ArtifactError, InputError, first_line
from ...core.sizes import check_input_shape, parse_hw
from .rewrites import decompose_hard_activations, flatten_to_reshape


def graph_inputs(model) -> list:
    """The graph's real inputs (initializers listed as inputs left out)."""
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def fixed_shape(model, card: ModelCard | None, batch: int, input_size) -> list[int]:
    """The input shape with every axis fixed: batch, and H/W from ``input_size``, the card or the graph."""
    inp = graph_inputs(model)[0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ArtifactError(f"input '{inp.name}' has {len(dims)} dimensions; expected a 4-D image batch")
    current = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    nhwc = card is not None and card.layout == "NHWC"
    hw_axes = (1, 2) if nhwc else (2, 3)
    if current[0] is not None and current[0] != batch:
        raise InputError(
            f"the source's batch is fixed at {current[0]}; pass --batch {current[0]}, or export "
            f"with a dynamic batch (the default) to make a batch-{batch} variant"
        )
    shape = list(current)
    shape[0] = batch
    if input_size is not None:
        hw = parse_hw(input_size, "input size")
        for axis, value in zip(hw_axes, hw):
            if current[axis] is not None and current[axis] != value:
                raise InputError(
                    f"the source's input is fixed at {current[hw_axes[0]]}x{current[hw_axes[1]]}; "
                    f"--input-size {hw[0]}x{hw[1]} cannot change it (export at that size instead)"
                )
            shape[axis] = value
    elif None in (current[a] for a in hw_axes):
        if card is None:
            raise InputError(
                "the source's height/width are dynamic and it carries no edgecnn card; pass --input-size HxW"
            )
        for axis, value in zip(hw_axes, card.crop):
            shape[axis] = int(value)
    if None in shape:
        raise InputError(
            f"cannot fix the input shape {['?' if d is None else d for d in current]}: its channel axis is dynamic"
        )
    multiple = int(card.extra.get("size_multiple", 16 if card.task == "segmentation" else 1)) if card else 1
    if any(shape[a] % multiple for a in hw_axes) and None in (current[a] for a in hw_axes):
        raise InputError(
            f"this model takes height and width in multiples of {multiple}, got {shape[hw_axes[0]]}x{shape[hw_axes[1]]}"
        )
    # before the graph is fixed, simplified or fed at that shape (a 1×3×30000×30000 input would take 10 GB a copy)
    check_input_shape(shape, f"input '{inp.name}' fixed at batch {batch}")
    return shape


def fix_shapes(model, shape: list[int]):
    """A copy of ``model`` with its input fixed at ``shape``, shapes folded, and portable operator forms.

    Returns:
        ``(model, rewrites, dynamic_values)``: rewrite counts, and how many values still have a dynamic shape.
    """
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    from ...convert.simplify import use_portable_ops

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]  # stale symbolic shapes; re-inferred below
    name = graph_inputs(fixed)[0].name
    try:
        make_input_shape_fixed(fixed.graph, name, list(shape))
        fix_output_shapes(fixed)
    except Exception as exc:  # ValueError for a rank mismatch, shape inference errors for inconsistent graphs
        raise ArtifactError(f"cannot fix the input of the model at {shape}: {first_line(exc)}") from None
    rewrites = dict(use_portable_ops(fixed))
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(fixed)
        if ok:
            fixed = simplified
    except Exception:  # onnxsim cannot take every graph; the fixed, unsimplified graph is still valid
        pass
    for key, value in use_portable_ops(fixed).items():
        rewrites[key] = rewrites.get(key, 0) + value
    rewrites.update(decompose_hard_activations(fixed))
    rewrites.update(flatten_to_reshape(fixed))
    inferred = onnx.shape_inference.infer_shapes(fixed, strict_mode=True)
    return fixed, rewrites, count_dynamic_values(inferred)


def count_dynamic_values(model) -> int:
    """How many graph values (inputs, outputs, intermediate) lack a fully static shape."""
    from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor

    values = list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)
    inits = {i.name for i in model.graph.initializer}
    return sum(
        1 for v in values if v.name not in inits and v.type.HasField("tensor_type") and not is_fixed_size_tensor(v)
    )
