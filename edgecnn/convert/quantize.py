"""Reduced precision: fp16 conversion and static int8 quantization (QDQ), with the graph forms int8 needs.

fp16 uses onnxruntime's float16 converter with fp32 inputs/outputs kept, so apps feed the same arrays.

int8 is static QDQ with per-channel S8 weights and U8 activations. The weights are 7-bit by default (−64 … 64,
onnxruntime's ``reduce_range``): x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) multiply U8×S8 with
``VPMADDUBSW``, which adds pairs of products into int16 and saturates: two weights near ±127 against activations
near 255 overflow it and the layer's output is silently wrong (measured on a Zen 3 EPYC: a 4-class head's output
SQNR 5.6 dB with 8-bit weights, 32.1 dB with 7-bit; VNNI CPUs and ARM accumulate in int32 and do not saturate).
7-bit weights keep every pair within int16 on every CPU, at the same kernels and speed; depthwise convolutions keep
8 bits (their kernel accumulates in int32: ``per_channel.full_range_weights``). 8-bit weights everywhere
(``weight_bits=8``) are for a target known to have VNNI or to be ARM.

1. ``quantization_twin``: onnxruntime's shape inference. Its graph-optimisation pass is skipped on
   purpose: it inlines ``HardSwish`` into ``HardSigmoid`` + ``Mul`` (an ONNX function body), which costs an
   extra int8 multiply per activation and nothing else (measured: identical graphs otherwise for the zoo).
2. ``int8_form``: ``HardSwish``/``HardSigmoid`` have no int8 kernel in onnxruntime's CPU provider, so each one
   becomes a float island (DequantizeLinear → HardSigmoid → QuantizeLinear, four passes over the tensor).
   They are rewritten into ops that do have int8 kernels: ``HardSigmoid(x) = α·Clip(x + β/α, 0, 1/α)``, where
   the ``Clip`` is absorbed by the range of the int8 ``Add``'s output and the ``α`` multiply is folded into the
   next DequantizeLinear's scale (``fold_scales``) — so hard-swish becomes QLinearAdd + QLinearMul, with no
   float round trip. This is what makes MobileNetV3 int8 faster than its fp32.
3. ``calibrate``: min/max or histograms over the calibration images, in chunks so memory stays bounded
   (onnxruntime's histogram calibrators hold every intermediate tensor of every image otherwise), written to
   onnxruntime's calibration cache so that re-quantizing (fallback rounds) does not calibrate again; min/max
   runs its augmented graph optimized (``OptimizedMinMax``).
4. ``quantize_int8``: ``quantize_static`` from the cache (per-channel weights by ``per_channel.to_per_channel``
   from its quick per-tensor output), then the scale folding, then ``float_fallback`` for
   the nodes kept in float, bias correction (``bias_correction``: the mean shift of weight rounding taken back
   out of each int8 layer's bias) and dead-node clean-up.

(Dynamic quantization, ConvInteger, is 2–11× slower than fp32 for CNNs on onnxruntime's CPU provider, and
S8 activations are slower than U8 on x86: neither is offered.)
"""

from __future__ import annotations

import collections
import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization.calibrate import MinMaxCalibrater

from .bias_correction import correct_bias
from .fp16 import Fp16Result, to_fp16, toposort  # noqa: F401 - re-exported: pipeline imports them here
from .options import STATIC_METHODS as CALIBRATION_METHODS
from .options import WEIGHT_BITS
from .ort_tools import in_folder, quiet
from .per_channel import covered, full_range_overrides, to_per_channel

PERCENTILE = 99.999
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


# ------------------------------------------------------------------------------------------ int8 graph form


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


def float_fallback(qmodel: onnx.ModelProto, twin: onnx.ModelProto, nodes: tuple | set) -> list[str]:
    """Make the named nodes of a QDQ model compute in float, in place; returns the nodes it rewired.

    ``quantize_static(nodes_to_exclude=…)`` alone leaves an excluded node reading dequantized int8 activations,
    and onnxruntime's WeightBiasQuantization even re-quantizes its float weights at load time, so the node
    is not really float. Here each such node reads the float tensors of ``twin`` (the graph that was quantized)
    instead: weights from the original initializers, activations from before their QuantizeLinear. Where the
    quantizer had removed a Relu/Clip (its clipping done by the QuantizeLinear), that activation is re-added in
    float. Inputs whose float value is not available unchanged are left dequantized.
    """
    graph = qmodel.graph
    twin_nodes = {n.name: n for n in twin.graph.node}
    twin_producer = {o: n for n in twin.graph.node for o in n.output}
    twin_inits = {i.name: i for i in twin.graph.initializer}
    inits = {i.name for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    rewired, added, redone = [], [], {}
    for node in graph.node:
        if node.name not in nodes or node.name not in twin_nodes:
            continue
        tnode = twin_nodes[node.name]
        changed = False
        for idx, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear" or idx >= len(tnode.input):
                continue
            want = tnode.input[idx]
            if want in twin_inits:  # a weight or bias: the original float values
                if want not in inits:
                    graph.initializer.append(copy.deepcopy(twin_inits[want]))
                    inits.add(want)
                node.input[idx] = want
                changed = True
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            source = q.input[0]
            made_by = producer.get(source)
            meant_by = twin_producer.get(want)
            if (made_by is None) != (meant_by is None):
                continue
            if made_by is not None and made_by.name != meant_by.name:
                if meant_by.op_type not in ("Relu", "Clip") or made_by.name != getattr(
                    twin_producer.get(meant_by.input[0]), "name", None
                ):
                    continue  # some other rewrite sits between them: keep the dequantized input
                # the quantizer removed this activation: redo it in float, once for all the float nodes that read
                # it (a ResNet block's output feeds the next block's first conv and its shortcut: two copies named
                # alike made an invalid graph)
                if meant_by.name not in redone:
                    redone[meant_by.name] = _float_activation(meant_by, source, want, twin_inits, inits, graph)
                    added.append(redone[meant_by.name])
                source = redone[meant_by.name].output[0]
            node.input[idx] = source
            changed = True
        if changed:
            rewired.append(node.name)
    graph.node.extend(added)
    toposort(graph)
    remove_dead(qmodel)
    return rewired


def _float_activation(
    meant_by: onnx.NodeProto, source: str, want: str, twin_inits: dict, inits: set, graph: onnx.GraphProto
) -> onnx.NodeProto:
    """A float copy of the Relu/Clip ``meant_by`` reading ``source``; its constant inputs added to ``graph``."""
    act = copy.deepcopy(meant_by)
    act.name = f"{meant_by.name}_float"
    act.input[0] = source
    del act.output[:]
    act.output.append(f"{want}_float")
    for extra in act.input[1:]:
        if extra and extra not in inits and extra in twin_inits:
            graph.initializer.append(copy.deepcopy(twin_inits[extra]))
            inits.add(extra)
    return act


def remove_dead(model: onnx.ModelProto) -> None:
    """Drop nodes whose outputs nobody reads, and unused initializers, in place."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        kept = [n for n in graph.node if any(o in used for o in n.output)]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    used = {i for n in graph.node for i in n.input}
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


# -------------------------------------------------------------------------------------- calibrate, quantize


def _op_types() -> list[str]:
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if name not in methods:
        raise ValueError(f"unknown calibration method {name!r}; use one of {', '.join(CALIBRATION_METHODS)}")
    return methods[name]


def calibrate(
    src: str | Path,
    arrays: np.ndarray,
    cache: str | Path,
    *,
    method: str = "minmax",
    input_name: str = "input",
    chunk: int = 8,
    batch: int | None = None,
) -> Path:
    """Measure activation ranges of ``src`` on ``arrays`` and write onnxruntime's calibration cache to ``cache``.

    Images are fed in chunks of ``chunk``: min/max ranges and histograms merge across chunks, so memory stays
    that of ``chunk`` images whatever the count. ``batch``: the graph's fixed batch size, if it has one.
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    extra = {"percentile": PERCENTILE} if method == "percentile" else {}
    with quiet(), tempfile.TemporaryDirectory(prefix="edgecnn-calib-") as tmp:
        aug = str(Path(tmp) / "aug.onnx")
        if method == "minmax":
            calibrator = OptimizedMinMax(Path(src), _op_types(), augmented_model_path=aug)
            calibrator.augment_graph()
            calibrator.create_inference_session()
        else:
            calibrator = create_calibrator(
                Path(src),
                _op_types(),
                augmented_model_path=aug,
                calibrate_method=_method(method),
                providers=["CPUExecutionProvider"],
                extra_options=extra,
            )
        for i in range(0, len(arrays), chunk):
            calibrator.collect_data(BatchReader(arrays[i : i + chunk], input_name, batch))
        ranges = calibrator.compute_data()
        del calibrator
    save_tensors_data(ranges, str(cache))
    return Path(cache)


class OptimizedMinMax(MinMaxCalibrater):
    """onnxruntime's min/max calibrator, its augmented graph run with graph optimizations on.

    onnxruntime runs that graph with every optimization off. Each calibrated tensor is read there by the
    ReduceMin/ReduceMax it adds, so no fusion can remove one, and with optimizations the runs are 10–15% quicker
    (ResNet50, 2 threads, interleaved: 55 against 63–66 ms an image; the 48-image calibration 3.9 against 4.4 s,
    median of 3). The ranges differ in the float rounding of the kernels only (ResNet50: at most 1e-5 of a range).
    """

    def create_inference_session(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.infer_session = ort.InferenceSession(self.augmented_model_path, opts, providers=self.execution_providers)


class BatchReader:
    """A single-use calibration reader: one image per call, or ``batch`` at a time for a fixed-batch graph
    (the last batch padded by repeating its final image)."""

    def __init__(self, arrays: np.ndarray, input_name: str = "input", batch: int | None = None) -> None:
        self._arrays, self._name, self._batch, self._i = arrays, input_name, batch or 1, 0

    def get_next(self) -> dict | None:
        if self._i >= len(self._arrays):
            return None
        chunk = self._arrays[self._i : self._i + self._batch]
        self._i += self._batch
        if len(chunk) < self._batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self._batch - len(chunk), axis=0)])
        return {self._name: np.ascontiguousarray(chunk)}

    def __iter__(self):
        return iter(self.get_next, None)


@dataclass(frozen=True)
class QuantizeReport:
    """What ``quantize_int8`` did beyond onnxruntime's quantizer."""

    scales_folded: int
    float_nodes: tuple  # nodes rewired to compute in float
    biases_corrected: int = 0  # layers whose bias took back the mean shift of their weight rounding


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    reader=None,
    *,
    method: str = "minmax",
    per_channel: bool = True,
    exclude_nodes: tuple = (),
    extra_options: dict | None = None,
    calibration_cache: str | Path | None = None,
    bias_means: dict | None = None,
    weight_bits: int = 7,
) -> QuantizeReport:
    """Static QDQ quantization of ``src`` (pre-processed, in ``int8_form``) to ``dst``.

    Args:
        reader: a fresh CalibrationDataReader (they are single-use); not needed with ``calibration_cache``.
        method: ``minmax``, ``entropy`` or ``percentile``; must be the cache's method when a cache is given.
        exclude_nodes: node names kept in float (sensitivity fallback); see ``float_fallback``.
        extra_options: passed to onnxruntime's quantizer (over our defaults).
        calibration_cache: a cache written by ``calibrate``.
        bias_means: ``bias_correction.input_means`` of ``src``: when given, every int8 layer's bias is corrected
            for the mean shift of its weight rounding (``bias_correction.correct_bias``).
        weight_bits: 7 (−64 … 64, no int16 saturation on x86 CPUs without VNNI: see the module docstring) or 8.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if weight_bits not in WEIGHT_BITS:
        raise ValueError(f"weight_bits must be 7 or 8, got {weight_bits}")
    reduce_range = weight_bits == 7
    options = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if method == "percentile":
        options["CalibPercentile"] = PERCENTILE
    twin = onnx.load(str(src))
    if reduce_range:  # depthwise weights keep 8 bits: their kernel cannot saturate (per_channel.full_range_weights)
        options.update(full_range_overrides(twin))
    options.update(extra_options or {})
    dst = Path(dst)
    raw = dst.with_name(f".{dst.name}.raw")
    fast = per_channel and not extra_options and calibration_cache is not None
    # per-channel weights from onnxruntime's per-tensor output (per_channel.py: the same model, 1–1.5 s sooner on
    # ResNet50), unless an option or an op outside what that module rewrites needs onnxruntime's own path; a
    # calibration cache is needed to run the quantizer again should the rewrite decline (a reader is single-use)
    fast = fast and covered(twin)

    def ort_quantize(channels: bool) -> onnx.ModelProto:
        try:
            with quiet():
                quantize_static(
                    str(src),
                    str(raw),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    per_channel=channels,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=_method(method),
                    nodes_to_exclude=list(exclude_nodes),
                    extra_options=options,
                    reduce_range=reduce_range,
                    calibration_cache_path=str(calibration_cache) if calibration_cache else None,
                )
            return onnx.load(str(raw))
        finally:
            raw.unlink(missing_ok=True)

    model = ort_quantize(per_channel and not fast)
    if fast and to_per_channel(model, twin, reduce_range=reduce_range) is None:
        model = ort_quantize(True)
    folded = fold_scales(model)
    rewired = float_fallback(model, twin, set(exclude_nodes)) if exclude_nodes else []
    corrected = correct_bias(model, twin, bias_means) if bias_means else 0
    remove_dead(model)
    toposort(model.graph)
    onnx.save(model, str(dst))
    return QuantizeReport(folded, tuple(rewired), corrected)
