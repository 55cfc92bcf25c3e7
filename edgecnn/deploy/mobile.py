"""Mobile artifacts: a fixed-shape graph, ORT-format files, and an NNAPI / CoreML partition report.

    source .onnx (dynamic batch) ─ fix every shape ─ onnxsim ─ portable activations ─ NAME.fixed.onnx ─ parity
                                                                    ├─ NAME.fixed.ort                  ─ parity
                                                                    └─ NAME.fixed.with_runtime_opt.ort ─ parity
    partition report (NNAPI, CoreML NeuralNetwork, CoreML MLProgram) for the fixed graph and for the source

Why each step:

* NNAPI takes no node whose input shape is dynamic, so a dynamic batch axis leaves it nothing to run; CoreML runs
  dynamic shapes slowly. Every dimension is fixed, then onnxsim folds the shape arithmetic that became constant.
* NNAPI and CoreML's NeuralNetwork format lack ``HardSwish``/``HardSigmoid`` (MobileNetV3); written as
  ``Add → Clip(0, 6) → Div`` (and a ``Mul``) they run there, with the clip mapping to NNAPI's RELU6. The
  ``ReduceMean → GlobalAveragePool`` rewrite of ``edgecnn.simplify`` is applied again in case the source skipped it.
* ``.ort`` files load in onnxruntime's mobile (minimal) builds. ``NAME.fixed.ort`` is optimised ahead of time
  for the CPU/XNNPACK providers; ``NAME.fixed.with_runtime_opt.ort`` keeps the graph at basic optimisations so
  NNAPI/CoreML can take whole partitions (onnxruntime's own guidance). ``required_operators*.config`` list the
  kernels a minimal onnxruntime build needs for them (``build.sh --include_ops_by_config``).

The partition estimate is onnxruntime's usability checker (``onnxruntime.tools.mobile_helpers``), read through
its structured results — its command line always exits 0. It judges by operator type and shape; the caveats it
lists (e.g. "Only 2D Conv") are not checked and are reported as such.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.card import ModelCard
from ..core.errors import ArtifactError, EdgeCNNError, InputError, first_line
from ..core.files import staged_output
from ..core.text import text_table

REPORT_JSON, REPORT_TEXT = "report.json", "report.txt"
#: What to do about an operator a mobile provider lacks, where there is a way round it: (provider, op) → advice.
HINTS = {
    ("NNAPI", "ConvTranspose"): "U-Net: unet_bilinear upsamples with Resize instead",
    ("CoreML NeuralNetwork", "QuantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
    ("CoreML NeuralNetwork", "DequantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
    ("CoreML MLProgram", "QuantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
    ("CoreML MLProgram", "DequantizeLinear"): "CoreML runs float models: ship fp32 or fp16 for it",
}
PARITY_SAMPLES = 8
#: (label, onnxruntime's supported-operator list, the highest tensor rank it takes), as the usability checker has them.
EPS = (("NNAPI", "nnapi_supported_ops.md", 999), ("CoreML NeuralNetwork", "coreml_supported_neuralnetwork_ops.md", 5),
       ("CoreML MLProgram", "coreml_supported_mlprogram_ops.md", 5))


@dataclass(frozen=True)
class Fallback:
    """Nodes of one operator type that an execution provider leaves to the CPU, and why."""

    op: str
    count: int
    reason: str


@dataclass(frozen=True)
class Partitioning:
    """How one mobile execution provider would split a graph (onnxruntime's usability-checker estimate)."""

    provider: str
    nodes: int
    supported_nodes: int
    partitions: int
    partition_sizes: tuple
    fallbacks: tuple  # of Fallback
    caveats: tuple  # operator conditions the checker does not verify
    suitability: str  # the checker's verdict: YES, MAYBE or NO

    @property
    def coverage(self) -> float:
        return self.supported_nodes / self.nodes if self.nodes else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["partition_sizes"] = list(self.partition_sizes)
        d["fallbacks"] = [asdict(f) for f in self.fallbacks]
        d["caveats"] = list(self.caveats)
        d["coverage"] = round(self.coverage, 4)
        return d


@dataclass(frozen=True)
class MobileArtifact:
    """One file written by ``make_mobile``, with its parity against the source model."""

    file: str
    kind: str  # "onnx", "ort", "ort-runtime-opt"
    size_bytes: int
    sha256: str
    parity: dict

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MobileResult:
    """What ``make_mobile`` produced."""

    model: str
    source: Path
    out_dir: Path
    input_shape: tuple
    artifacts: tuple  # of MobileArtifact
    configs: tuple  # required-operator config file names
    partitions: tuple  # of Partitioning, fixed-shape graph
    source_partitions: tuple  # of Partitioning, the source graph as it was
    rewrites: dict
    dynamic_values: int  # values whose shape is still not static in the fixed graph (should be 0)
    report: dict
    warnings: tuple = ()

    @property
    def passed(self) -> bool:
        return all(a.parity.get("passed", False) for a in self.artifacts)

    def path(self, kind: str) -> Path:
        for a in self.artifacts:
            if a.kind == kind:
                return self.out_dir / a.file
        raise KeyError(kind)

    def partition(self, provider: str) -> Partitioning:
        for p in self.partitions:
            if p.provider == provider:
                return p
        raise KeyError(provider)


# --- the step --------------------------------------------------------------------------------------------------


def make_mobile(src: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, batch: int = 1,
                input_size: str | int | tuple | None = None, force: bool = False, weights: str | None = None,
                progress=None) -> MobileResult:
    """Make the mobile artifacts of a model: fixed shapes, ``.ort`` files, a partition report.

    Args:
        src: an ``.onnx`` file, or a model name. A name uses the existing export in ``exported/NAME`` when there
            is one (and no ``weights``/``input_size`` are given); otherwise it is exported there first, through
            ``edgecnn.export``, with the batch size fixed.
        out_dir: output folder; default ``mobile/`` beside the source file (``exported/NAME/mobile``).
        batch: the batch size to fix.
        input_size: ``H`` or ``"HxW"`` for sources whose height/width are dynamic (U-Net); default: the card's crop.
        force: replace an existing mobile folder (only once the new one is complete).
        weights: for a model name: the weights to export with (see ``edgecnn.export``).
        progress: called with the name of each step as it starts.

    Returns:
        ``MobileResult``; ``report.json``/``report.txt`` in ``out_dir`` hold the same record.

    Raises:
        EdgeCNNError: an unreadable source, a shape that cannot be fixed, an unwritable output folder, or a
            conversion that fails. Parity failures are recorded in the result, not raised.
    """
    say = progress or (lambda step: None)
    if int(batch) < 1:
        raise InputError(f"batch must be a positive integer, got {batch}")
    source, export_record = _resolve_source(src, batch, input_size, weights, force, say)
    out_dir = Path(out_dir) if out_dir is not None else source.parent / "mobile"
    model = _load(source)
    card = _card_of(model)
    shape = _fixed_shape(model, card, int(batch), input_size)
    with staged_output(out_dir, force) as staging:
        result = _make_into(staging, out_dir, source, model, card, shape, export_record, say)
    return result


def _make_into(staging: Path, out_dir: Path, source: Path, model, card: ModelCard | None, shape: list,
               export_record: dict | None, say) -> MobileResult:
    import onnx

    from ..core.files import sha256_file

    warnings: list[str] = []
    stem = source.name[: -len(".onnx")] if source.name.endswith(".onnx") else source.stem
    fixed_path = staging / f"{stem}.fixed.onnx"

    say("fix shapes")
    fixed, rewrites, dynamic = fix_shapes(model, shape)
    if dynamic:
        warnings.append(f"{dynamic} value(s) still have dynamic shapes after fixing the input; "
                        "NNAPI will not take the nodes that read them")
    if card is not None:
        in_shape = list(shape)
        card = card.replace(input_shape=in_shape, extra={**card.extra, "mobile": {
            "fixed_from": str(source.name), "rewrites": rewrites}})
        card.attach(fixed)
    _save(fixed, fixed_path)

    if card is not None and card.precision == "fp16":
        # Measured: the converter's CPU session wraps fp16 ops in Casts to fp32 (the CPU provider lacks fp16 kernels)
        # and saves them, so the .ort files compute in fp32 and Clip bounds stop being constants NNAPI can read.
        warnings.append("fp16 source: ORT-format conversion bakes in the CPU provider's Casts to fp32 (see the "
                        "partitions); for phones convert the fp32 model and let NNAPI/CoreML pick fp16 themselves")
    say("convert to ORT format")
    orts, configs = convert_to_ort(fixed_path, staging)

    say("partition report")
    partitions = tuple(partition_report(fixed_path))
    source_partitions = tuple(partition_report(source))

    say("parity")
    inputs, input_note = _sample_inputs(fixed, card, shape)
    input_name = fixed.graph.input[0].name
    reference = _run(source, inputs, input_name)
    precision = card.precision if card is not None else "fp32"
    task = card.task if card is not None else ("segmentation" if reference.ndim == 4 else "classification")
    random_weights = bool(card is not None and (card.weights or {}).get("source") == "random")
    artifacts = []
    for path, kind in [(fixed_path, "onnx")] + [(p, k) for p, k in orts]:
        artifacts.append(MobileArtifact(path.name, kind, path.stat().st_size, sha256_file(path),
                                        _parity(reference, _run(path, inputs, input_name), task, precision,
                                                random_weights)))
    for a in artifacts:
        if a.parity.get("judged", True) and not a.parity["passed"]:
            warnings.append(f"{a.file}: parity FAILED: " + "; ".join(a.parity["failures"]))

    report = {
        "edgecnn_mobile_report": 1,
        "model": card.model if card is not None else stem,
        "source": {"file": str(source), "sha256": sha256_file(source), "export": export_record},
        "input": {"name": input_name, "shape": list(shape),
                  "dtype": onnx.helper.tensor_dtype_to_np_dtype(fixed.graph.input[0].type.tensor_type.elem_type).name},
        "rewrites": rewrites,
        "dynamic_values": dynamic,
        "artifacts": [a.to_dict() for a in artifacts],
        "required_operators": list(configs),
        "parity_inputs": {"count": int(len(inputs)), "source": input_note,
                          "reference": f"{source.name} on onnxruntime's CPU provider"},
        "partitions": {"fixed": [p.to_dict() for p in partitions],
                       "source": [p.to_dict() for p in source_partitions]},
        "warnings": warnings,
    }
    (staging / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    (staging / REPORT_TEXT).write_text(render_report(report) + "\n")
    return MobileResult(report["model"], source, out_dir, tuple(shape), tuple(artifacts), tuple(configs),
                        partitions, source_partitions, rewrites, dynamic, report, tuple(warnings))


def _resolve_source(src, batch: int, input_size, weights, force: bool, say) -> tuple[Path, dict | None]:
    """The .onnx to work from, and the export record when a model name was exported for it."""
    path = Path(src)
    if path.suffix.lower() == ".onnx" or path.exists():
        if not path.is_file():
            raise ArtifactError(f"{path}: no such model file" if not path.exists() else
                                f"{path} is a folder; pass an .onnx file or a model name")
        if weights is not None:
            raise InputError("--weights applies to a model name, not to an .onnx file (its weights are in it)")
        return path, None

    from ..models import get_spec
    from ..pipeline import export, read_manifest

    spec = get_spec(str(src))  # raises UnknownModelError for a name that is neither a file nor a model
    folder = Path("exported") / spec.name
    if (folder / "manifest.json").is_file() and weights is None and input_size is None:
        manifest = read_manifest(folder)
        fp32 = [a["file"] for a in manifest.get("artifacts", []) if a.get("precision") == "fp32"]
        if fp32 and (folder / fp32[0]).is_file():
            return folder / fp32[0], {"reused": str(folder), "parity_vs_pytorch": manifest["artifacts"][0]["parity"]}
    say(f"export {spec.name} (batch {batch})")
    result = export(spec.name, folder, weights=weights, input_size=input_size, batch=batch, force=force)
    fp32 = result.artifacts[0]
    return result.path("fp32"), {"exported": str(folder), "batch": batch, "parity_vs_pytorch": fp32.parity}


def _load(path: Path):
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError and others for truncated or foreign files
        raise ArtifactError(f"{path}: not a readable ONNX model ({first_line(exc)}); export it again") from None
    if not model.graph.node or len(model.graph.input) == 0:
        raise ArtifactError(f"{path}: not a readable ONNX model (no graph in the file); export it again")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ArtifactError(f"{path}: the ONNX model is invalid ({first_line(exc)[:200]}); export it again") from None
    inputs = _graph_inputs(model)
    if len(inputs) != 1:
        raise ArtifactError(f"{path}: expected a model with one image input, it has {len(inputs)}")
    return model


def _graph_inputs(model) -> list:
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _card_of(model) -> ModelCard | None:
    return ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})


def _fixed_shape(model, card: ModelCard | None, batch: int, input_size) -> list[int]:
    """The input shape with every axis fixed: batch, and H/W from ``input_size``, the card or the graph."""
    inp = _graph_inputs(model)[0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ArtifactError(f"input '{inp.name}' has {len(dims)} dimensions; expected a 4-D image batch")
    current = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
    nhwc = card is not None and card.layout == "NHWC"
    hw_axes = (1, 2) if nhwc else (2, 3)
    if current[0] is not None and current[0] != batch:
        raise InputError(f"the source's batch is fixed at {current[0]}; pass --batch {current[0]}, or export "
                         f"with a dynamic batch (the default) to make a batch-{batch} variant")
    shape = list(current)
    shape[0] = batch
    if input_size is not None:
        text = str(input_size).lower().replace(" ", "")
        try:
            parts = [int(p) for p in text.strip("()[]").replace(",", "x").split("x")] \
                if not isinstance(input_size, (tuple, list)) else [int(v) for v in input_size]
        except ValueError:
            raise InputError(f"input size '{input_size}' is not a number or HxW (e.g. 224 or 256x320)") from None
        hw = (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)
        if len(hw) != 2 or min(hw) < 1:
            raise InputError(f"input size '{input_size}' is not a number or HxW (e.g. 224 or 256x320)")
        for axis, value in zip(hw_axes, hw):
            if current[axis] is not None and current[axis] != value:
                raise InputError(f"the source's input is fixed at {current[hw_axes[0]]}x{current[hw_axes[1]]}; "
                                 f"--input-size {hw[0]}x{hw[1]} cannot change it (export at that size instead)")
            shape[axis] = value
    elif None in (current[a] for a in hw_axes):
        if card is None:
            raise InputError("the source's height/width are dynamic and it carries no edgecnn card; "
                             "pass --input-size HxW")
        for axis, value in zip(hw_axes, card.crop):
            shape[axis] = int(value)
    if None in shape:
        raise InputError(f"cannot fix the input shape {['?' if d is None else d for d in current]}: "
                         "its channel axis is dynamic")
    multiple = int(card.extra.get("size_multiple", 16 if card.task == "segmentation" else 1)) if card else 1
    if any(shape[a] % multiple for a in hw_axes) and None in (current[a] for a in hw_axes):
        raise InputError(f"this model takes height and width in multiples of {multiple}, got "
                         f"{shape[hw_axes[0]]}x{shape[hw_axes[1]]}")
    return shape


# --- graph work ---------------------------------------------------------------------------------------------------


def fix_shapes(model, shape: list[int]):
    """A copy of ``model`` with its input fixed at ``shape``, shapes folded, and portable operator forms.

    Returns:
        ``(model, rewrites, dynamic_values)``: rewrite counts, and how many values still have a dynamic shape.
    """
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_input_shape_fixed

    from ..convert.simplify import use_portable_ops

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    del fixed.graph.value_info[:]  # stale symbolic shapes; re-inferred below
    name = _graph_inputs(fixed)[0].name
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
        if node not in targets:
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "HardSigmoid" and (abs(attrs.get("alpha", 0.2) - 1 / 6) > 1e-6
                                               or abs(attrs.get("beta", 0.5) - 0.5) > 1e-6):
            new_nodes.append(node)  # not PyTorch's hardsigmoid: its constants would need another form
            continue
        elem = types.get(node.input[0], onnx.TensorProto.FLOAT)
        if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            new_nodes.append(node)
            continue
        x, out = node.input[0], node.output[0]
        base = node.name or out
        new_nodes.append(helper.make_node("Add", [x, const(3.0, elem)], [f"{base}/add3"], name=f"{base}/add3"))
        new_nodes.append(helper.make_node("Clip", [f"{base}/add3", const(0.0, elem), const(6.0, elem)],
                                          [f"{base}/relu6"], name=f"{base}/relu6"))
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
        model.graph.node[i].CopyFrom(helper.make_node("Reshape", [node.input[0], name], list(node.output),
                                                      name=node.name))
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


def count_dynamic_values(model) -> int:
    """How many graph values (inputs, outputs, intermediate) lack a fully static shape."""
    from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor

    values = list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)
    inits = {i.name for i in model.graph.initializer}
    return sum(1 for v in values if v.name not in inits and v.type.HasField("tensor_type")
               and not is_fixed_size_tensor(v))


# --- ORT format ------------------------------------------------------------------------------------------------


def convert_to_ort(onnx_path: Path, out_dir: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """Convert ``onnx_path`` to ORT format with onnxruntime's converter, in a subprocess of this Python.

    Both optimisation styles are written (see the module notes); the target platform is ``arm`` (phones), which
    only keeps the x86-specific NCHWc layout out and allows int8 QDQ fusions. The converter runs as its own
    process because it prints progress and onnxruntime logs on the C++ side, which a library call cannot
    silence; its output is kept for the error message when it fails.

    Returns:
        ``([(ort_path, kind), ...], [config file names])``.
    """
    work = Path(tempfile.mkdtemp(prefix=".ort-", dir=out_dir))
    try:
        cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(onnx_path.resolve()),
               "--output_dir", str(work.resolve()), "--optimization_style", "Fixed", "Runtime",
               "--target_platform", "arm"]
        env = {**os.environ, "ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL": "all"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        stem = onnx_path.name[: -len(".onnx")]
        wanted = {f"{stem}.ort": "ort", f"{stem}.with_runtime_opt.ort": "ort-runtime-opt"}
        missing = [name for name in wanted if not (work / name).is_file()]
        if proc.returncode != 0 or missing:
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            why = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "no output")
            raise ArtifactError(f"ORT-format conversion of {onnx_path.name} failed: {why.strip()[:300]}")
        orts = []
        for name, kind in wanted.items():
            os.replace(work / name, out_dir / name)
            orts.append((out_dir / name, kind))
        configs = []
        for cfg in sorted(work.glob("*.config")):
            # <stem>.required_operators[.with_runtime_opt].config → required_operators[...].config
            name = cfg.name[len(stem) + 1:] if cfg.name.startswith(stem + ".") else cfg.name
            os.replace(cfg, out_dir / name)
            configs.append(name)
        return orts, configs
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- partition report ---------------------------------------------------------------------------------------------


def partition_report(onnx_path: str | os.PathLike) -> list[Partitioning]:
    """Estimate how NNAPI and CoreML would partition the graph, as onnxruntime's usability checker does.

    The graph is first optimised at onnxruntime's basic level (what ORT-format conversion with runtime
    optimisations keeps) and shape-inferred; nodes count as supported when their operator is on the provider's
    list and their inputs have static shapes (and, for CoreML, rank ≤ 5).
    """
    import onnx
    from onnxruntime.tools.mobile_helpers import usability_checker as uc
    from onnxruntime.tools.onnx_model_utils import is_fixed_size_tensor, optimize_model

    if not Path(onnx_path).is_file():
        raise ArtifactError(f"{onnx_path}: no such model file")
    with tempfile.TemporaryDirectory(prefix="edgecnn-partition-") as tmp:
        opt_path = Path(tmp) / "basic.onnx"
        try:
            optimize_model(Path(onnx_path), opt_path)
            model = onnx.shape_inference.infer_shapes(onnx.load(str(opt_path)), strict_mode=True)
        except Exception as exc:  # onnxruntime or shape inference rejecting the graph
            raise ArtifactError(f"cannot analyse {Path(onnx_path).name} for mobile providers: {first_line(exc)}") from None
    # An omitted optional input (Resize's roi/scales: name "") is absent, not dynamic; the checker, finding no shape
    # for "", would count the node as dynamic. A fixed-shape entry for "" in this private copy says what it is.
    model.graph.value_info.append(onnx.helper.make_tensor_value_info("", onnx.TensorProto.FLOAT, []))
    values = {v.name: v for v in list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)}
    inits = {i.name for i in model.graph.initializer}

    def fixed(name: str) -> bool:
        return not name or name in inits or (name in values and is_fixed_size_tensor(values[name]))

    consts = {i.name: i for i in model.graph.initializer}
    out = []
    for label, config, max_rank in EPS:
        checker = _checker(uc, config, label, consts)
        info = uc.check_partitioning(model.graph, checker, True, max_rank)
        taken = {id(n) for group in info.supported_groups for n in group}
        reasons: Counter = Counter()
        for node in model.graph.node:
            if id(node) in taken:
                continue
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"
            if id(node) in checker.violations:
                why = checker.violations[id(node)]
            elif not checker.is_op_supported(node):
                why = "operator not supported"
                if (label, op) in HINTS:
                    why += f"; {HINTS[(label, op)]}"
            elif not all(fixed(i) for i in node.input):
                why = "dynamic input shape"
            elif any(i in values and len(values[i].type.tensor_type.shape.dim) > max_rank for i in node.input):
                why = f"input rank above {max_rank}"
            else:
                why = "left out of the partition by the checker"
            reasons[(op, why)] += 1
        fallbacks = tuple(Fallback(op, n, why) for (op, why), n in sorted(reasons.items(), key=lambda kv: -kv[1]))
        out.append(Partitioning(label, info.num_nodes, info.num_supported_nodes, info.num_partitions,
                                tuple(len(g) for g in info.supported_groups), fallbacks,
                                tuple(info.supported_ops_checker.get_caveats()), info.suitability().name))
    return out


def _checker(uc, config: str, label: str, consts: dict):
    """onnxruntime's operator-list checker, plus the operator conditions edgecnn's models meet in practice.

    The checker judges by operator type only. Two conditions decide real partitions of our models, so they are
    checked here: NNAPI runs Clip only as RELU6/RELU1 (its op builder), and CoreML's NeuralNetwork format runs
    Resize only with ``coordinate_transformation_mode`` ``asymmetric`` (its operator list).
    """
    from onnx import helper, numpy_helper

    class Checker(uc._SupportedOpsChecker):
        def __init__(self) -> None:
            super().__init__(Path(uc.__file__).parent / config)
            self.violations: dict[int, str] = {}

        def is_op_supported(self, node) -> bool:
            if not super().is_op_supported(node):
                return False
            why = _violation(node)
            if why:
                self.violations[id(node)] = why
            return not why

    def const(name: str):
        return float(numpy_helper.to_array(consts[name]).reshape(-1)[0]) if name in consts else None

    def _violation(node) -> str:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if label == "NNAPI" and node.op_type == "Clip":
            lo = const(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("min")
            hi = const(node.input[2]) if len(node.input) > 2 and node.input[2] else attrs.get("max")
            if (lo, hi) not in ((0.0, 6.0), (-1.0, 1.0)):
                return "NNAPI runs Clip only as RELU6 (0, 6) or RELU1 (-1, 1)"
        if label == "CoreML NeuralNetwork" and node.op_type == "Resize":
            mode = attrs.get("coordinate_transformation_mode", b"half_pixel")
            if (mode.decode() if isinstance(mode, bytes) else mode) != "asymmetric":
                return "CoreML NeuralNetwork takes Resize only with coordinate_transformation_mode 'asymmetric'"
        return ""

    return Checker()


def render_report(report: dict) -> str:
    """The report as a readable text table."""
    lines = [f"mobile artifacts for {report['model']} (input {report['input']['name']} "
             f"{'x'.join(map(str, report['input']['shape']))} {report['input']['dtype']})", ""]
    lines.append(text_table(["artifact", "size", "max abs err", "parity"],
                        [[a["file"], f"{a['size_bytes'] / 1e6:.2f} MB", f"{a['parity']['max_abs']:.1e}",
                          _verdict(a["parity"])] for a in report["artifacts"]]))
    lines += ["", f"parity: {report['parity_inputs']['count']} inputs ({report['parity_inputs']['source']}) "
              f"against {report['parity_inputs']['reference']}"]
    if report["required_operators"]:
        lines.append("required operators (minimal builds): " + ", ".join(report["required_operators"]))
    done = {k: v for k, v in report["rewrites"].items() if v}
    lines.append("portable rewrites: " + (", ".join(f"{k} ×{v}" for k, v in done.items()) or "none needed"))
    for title, key in (("fixed-shape graph", "fixed"), ("source graph, as exported", "source")):
        lines += ["", f"partitions, {title}:"]
        rows = []
        for p in report["partitions"][key]:
            by_reason: dict = {}
            for f in p["fallbacks"]:
                by_reason.setdefault(f["reason"], []).append(f"{f['op']} ×{f['count']}")
            falls = "; ".join(f"{why}: {', '.join(ops)}" for why, ops in by_reason.items()) or "-"
            rows.append([p["provider"], f"{p['supported_nodes']}/{p['nodes']} ({p['coverage']:.0%})",
                         str(p["partitions"]), p["suitability"], falls])
        lines.append(text_table(["provider", "nodes taken", "partitions", "worth it", "left to CPU (why)"], rows))
    caveats = [(p["provider"], c) for p in report["partitions"]["fixed"] for c in p["caveats"]]
    if caveats:
        lines += ["", "operator conditions the estimate does not check (it assumes they hold):"]
        lines += [f"  {provider}: {c.removeprefix('ai.onnx:')}" for provider, c in caveats]
    for w in report["warnings"]:
        lines.append(f"note: {w}")
    return "\n".join(lines)


# --- helpers ---------------------------------------------------------------------------------------------------


def _sample_inputs(model, card: ModelCard | None, shape: list[int]) -> tuple[np.ndarray, str]:
    """Parity inputs: sample photographs through the card's preprocessing; seeded noise without a card."""
    import onnx

    elem = model.graph.input[0].type.tensor_type.elem_type
    n = max(PARITY_SAMPLES, shape[0])
    if card is not None:
        try:
            from ..convert.calibration import sample_photos
            from ..runtime.preprocess import preprocess, preprocess_uint8

            photos = sample_photos(n, seed=1)
            if elem == onnx.TensorProto.UINT8:
                arrays = np.stack([preprocess_uint8(p, card) for p in photos])
                if card.layout != "NHWC":
                    arrays = np.ascontiguousarray(arrays.transpose(0, 3, 1, 2))
            else:
                arrays = np.stack([preprocess(p, card) for p in photos])
            return arrays, "sample photographs through the model's preprocessing"
        except EdgeCNNError:  # no scikit-learn for the sample photos: fall through to noise
            pass
    rng = np.random.default_rng(0)
    full = [n] + list(shape[1:])
    if elem == onnx.TensorProto.UINT8:
        return rng.integers(0, 256, full, dtype=np.uint8), "seeded random pixels"
    return rng.standard_normal(full).astype(np.float32), "seeded standard-normal noise"


def _run(path: Path, arrays: np.ndarray, input_name: str) -> np.ndarray:
    from ..pipeline import run_onnx

    return run_onnx(path, arrays, input_name)


def _parity(reference: np.ndarray, outputs: np.ndarray, task: str, precision: str, random_weights: bool) -> dict:
    from ..runtime.compare import compare

    return compare(reference, outputs, task=task, precision=precision, random_weights=random_weights).to_dict()


def _save(model, path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ArtifactError(f"the fixed-shape graph fails onnx.checker: {first_line(exc)[:200]}") from None
    onnx.save(model, str(path))


def _verdict(parity: dict) -> str:
    if not parity.get("judged", True):
        return "n/a"
    return "pass" if parity["passed"] else "FAIL"
