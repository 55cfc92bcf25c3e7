"""INT8 that is faster and keeps accuracy: calibration choice, per-layer sensitivity, float fallback, speed gate.

``build_int8`` is the int8 step of the export pipeline::

    fp32 ─ pre-process ─ int8_form (hard-swish/sigmoid → int8-coverable ops) = the "twin" that gets quantized
      │  calibration images split: most calibrate, a held-out slice ("selection") judges agreement with fp32
      ├─ calibrate (minmax | entropy | percentile | auto = each, keep the best agreement on the selection)
      ├─ per-layer sensitivity: SQNR of every quantized tensor against fp32, and the dB each node loses
      ├─ fallback: the most sensitive nodes back to float, 1, 2, 4 … until the agreement target is met
      └─ speed gate: fp32 and the int8 candidates timed side by side (2 threads, batch 1, interleaved);
         static policy ships int8 and says plainly when it is not faster, and why;
         auto policy keeps the fastest of fp32 / int8 / mixed that meets the target.

Everything is recorded in an ``Int8Result`` (``to_dict()`` goes into the manifest). No printing here.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from ..core.errors import InputError
from .quantize import (CALIBRATION_METHODS, SCALE_SUFFIX, calibrate, int8_form, preprocess_for_quantization,
                       quantize_int8)

POLICIES = ("static", "auto")
CALIBRATION_CHOICES = CALIBRATION_METHODS + ("auto",)
# Agreement of int8 with fp32 on the held-out selection slice that counts as "keeps accuracy". Disagreements are
# near-ties that go both ways, so accuracy moves far less than agreement (measured: 99% agreement, ±0.5 point);
# 97% tolerates one disagreement in the usual 32–48 selection images, where 98% would let a single near-tie
# trigger a fallback that costs speed and, on a slice that small, buys nothing measurable.
DEFAULT_TARGETS = {"classification": {"top1": 0.97}, "segmentation": {"pixel": 0.98, "miou": 0.95}}
SELECTION_MAX = 48  # most calibration images held out to judge agreement
SENSITIVITY_IMAGES = 8  # images the per-layer SQNR is measured on
SENSITIVITY_REPORTED = 15  # layers listed in the manifest
_ACTIVATIONS = ("Relu", "Clip")


# ------------------------------------------------------------------------------------------------ agreement


@dataclass(frozen=True)
class Agreement:
    """How closely an int8 model's outputs follow fp32's on the same images."""

    task: str
    samples: int
    sqnr_db: float  # signal-to-quantization-noise ratio of the outputs
    cosine: float
    top1: float | None = None  # classification: share of images with the same top-1 class
    pixel: float | None = None  # segmentation: share of pixels with the same class
    miou: float | None = None  # segmentation: mean IoU of the int8 masks against the fp32 masks
    kl: float = 0.0  # mean KL(softmax fp32 ‖ softmax int8) over images (pixels): how far the decisions moved

    def meets(self, target: dict) -> bool:
        return all(getattr(self, key) is not None and getattr(self, key) >= value for key, value in target.items())

    def score(self) -> tuple:
        """Sort key: task agreement first, then the smaller KL divergence of the class probabilities.

        On a few dozen images the methods often tie on agreement; KL of the softmax, not the logits' SQNR, is
        what predicts the near-ties that flip (logit SQNR is dominated by the largest logits).
        """
        primary = self.top1 if self.task != "segmentation" else min(self.pixel, self.miou)
        return (round(primary, 6), -self.kl)

    def summary(self) -> str:
        core = (f"top-1 {self.top1:.3f}" if self.task != "segmentation"
                else f"pixel {self.pixel:.4f} mIoU {self.miou:.4f}")
        return f"{core}, SQNR {self.sqnr_db:.1f} dB on {self.samples} images"

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}


def agreement(reference: np.ndarray, outputs: np.ndarray, task: str) -> Agreement:
    """Compare int8 ``outputs`` with fp32 ``reference`` (N×classes, or N×classes×H×W for segmentation)."""
    ref = np.asarray(reference, np.float64)
    out = np.nan_to_num(np.asarray(outputs, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n = len(ref)
    flat_r, flat_o = ref.reshape(n, -1), out.reshape(n, -1)
    sqnr = _sqnr(float((flat_r ** 2).sum()), float(((flat_r - flat_o) ** 2).sum()))
    a = flat_r - flat_r.mean(1, keepdims=True)
    b = flat_o - flat_o.mean(1, keepdims=True)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = float(np.mean(np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 1.0)))
    kl = _kl(ref, out)
    if task == "segmentation":
        rm, om = ref.argmax(1), out.argmax(1)
        ious = []
        for c in range(ref.shape[1]):
            union = np.logical_or(rm == c, om == c).sum()
            if union:
                ious.append(np.logical_and(rm == c, om == c).sum() / union)
        return Agreement(task, n, sqnr, cosine, pixel=float((rm == om).mean()),
                         miou=float(np.mean(ious)) if ious else 1.0, kl=kl)
    return Agreement(task, n, sqnr, cosine, top1=float((ref.argmax(1) == out.argmax(1)).mean()), kl=kl)


def _kl(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean KL(softmax(ref) ‖ softmax(out)) over the class axis (1), averaged over images and pixels."""
    lr = ref - ref.max(1, keepdims=True)
    lr = lr - np.log(np.exp(lr).sum(1, keepdims=True))
    lo = out - out.max(1, keepdims=True)
    lo = lo - np.log(np.exp(lo).sum(1, keepdims=True))
    return float(np.maximum((np.exp(lr) * (lr - lo)).sum(1), 0.0).mean())


def _sqnr(signal: float, noise: float) -> float:
    if noise <= 0:
        return 99.0
    if signal <= 0:
        return -99.0
    return float(min(99.0, 10 * math.log10(signal / noise)))


def run_model(path: str | Path, arrays: np.ndarray, *, input_name: str = "input", batch: int | None = None,
              outputs: list | None = None, level: str = "all", threads: int | None = None) -> list[np.ndarray]:
    """Outputs of ``path`` on ``arrays`` (CPU provider), in chunks (of the graph's fixed batch, if it has one)."""
    chunks = list(_iter_outputs(path, arrays, input_name=input_name, batch=batch, outputs=outputs, level=level,
                                threads=threads))
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def _iter_outputs(path, arrays, *, input_name="input", batch=None, outputs=None, level="all", threads=None,
                  step: int | None = None):
    """Yield the outputs of each chunk of ``arrays`` (one chunk at a time, so memory stays that of a chunk)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                     "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in session.get_outputs()]
    step = batch or step or 8
    for i in range(0, len(arrays), step):
        chunk = arrays[i:i + step]
        real = len(chunk)
        if batch and real < batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        yield [o[:real] for o in session.run(names, {input_name: np.ascontiguousarray(chunk)})]


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


def layer_sensitivity(twin_path: str | Path, qdq_path: str | Path, arrays: np.ndarray, *, input_name: str = "input",
                      batch: int | None = None) -> tuple[LayerSensitivity, ...]:
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
    pairs = _dequantized_pairs(twin, qdq)  # twin tensor -> QDQ tensor
    if not pairs:
        return ()
    twin_names, q_names = list(pairs), [pairs[t] for t in pairs]
    signal: dict = defaultdict(float)
    noise: dict = defaultdict(float)
    with tempfile.TemporaryDirectory(prefix="edgecnn-sens-") as tmp:
        fa, qa = Path(tmp) / "twin.onnx", Path(tmp) / "qdq.onnx"
        _save_with_outputs(twin, twin_names, fa)
        _save_with_outputs(qdq, q_names, qa)
        # One image at a time: every intermediate tensor of a 224² U-Net is ~200 MB per image.
        kw = dict(input_name=input_name, batch=batch, level="basic", step=1)
        for ref, out in zip(_iter_outputs(fa, arrays, outputs=twin_names, **kw),
                            _iter_outputs(qa, arrays, outputs=q_names, **kw)):
            for t, r, o in zip(twin_names, ref, out):
                r64 = r.astype(np.float64)
                signal[t] += float((r64 ** 2).sum())
                noise[t] += float(((r64 - o.astype(np.float64)) ** 2).sum())
    sqnr = {t: _sqnr(signal[t], noise[t]) for t in twin_names}
    weights = _weight_sqnr(twin, qdq)

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
        while out_t not in sqnr and len(consumers[out_t]) == 1 and (
                consumers[out_t][0].op_type in _ACTIVATIONS or consumers[out_t][0].name.endswith(SCALE_SUFFIX)):
            out_t = consumers[out_t][0].output[0]  # the quantizer absorbed this activation into the output's Q
        ins = [sqnr[i] for i in node.input if i in sqnr]
        if out_t not in sqnr or not ins:
            continue
        worst_in = min(ins)
        result.append(LayerSensitivity(node.name, node.op_type, sqnr[out_t], worst_in,
                                       max(0.0, worst_in - sqnr[out_t]), weights.get(node.name)))
    result.sort(key=lambda s: (-s.loss_db, s.sqnr_db))
    return tuple(result)


def _dequantized_pairs(twin: onnx.ModelProto, qdq: onnx.ModelProto) -> dict:
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
    model.graph.output.extend(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                              for n in names if n not in present)
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
        out[node.name] = _sqnr(float((w ** 2).sum()), float(((w - deq) ** 2).sum()))
    return out


# ----------------------------------------------------------------------------------------------- speed gate


@dataclass(frozen=True)
class SpeedGate:
    """int8 candidates and fp32 timed side by side, and what may slow int8 down."""

    fp32_ms: float
    candidates_ms: dict  # name ("int8", "mixed") -> p50 latency in ms
    ratios: dict  # name -> candidate p50 / fp32 p50
    threads: int
    batch: int
    method: str
    round_trips: dict  # name -> {"count": float islands left after onnxruntime's fusions, "ops": {op: n}}
    vnni: bool | None  # None: the CPU flags could not be read
    depthwise_convs: int
    causes: tuple = ()  # likely reasons, when int8 is not faster

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fp32_ms"] = round(self.fp32_ms, 4)
        d["candidates_ms"] = {k: round(v, 4) for k, v in self.candidates_ms.items()}
        d["ratios"] = {k: round(v, 3) for k, v in self.ratios.items()}
        d["causes"] = list(self.causes)
        return d


def cpu_has_vnni() -> bool | None:
    """Whether the CPU has VNNI (one-instruction int8 dot products: avx512_vnni, avx_vnni, or AMX); None if unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    if not flags:
        return None
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def float_islands(path: str | Path) -> dict:
    """Q/DQ round trips left in the graph after onnxruntime's int8 fusions (what it actually runs).

    Counts activation DequantizeLinear nodes that survive optimization (not those of the final outputs): each
    one feeds a float operator onnxruntime had no int8 kernel or fusion for. Returns
    ``{"count": n, "ops": {float op type: n}}``.
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgecnn-opt-") as tmp:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        model = onnx.load(opts.optimized_model_filepath)
    inits = {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    consumers = defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].append(n)
    count, ops = 0, defaultdict(int)
    for n in model.graph.node:
        if n.op_type != "DequantizeLinear" or n.input[0] in inits or n.output[0] in outputs:
            continue
        readers = [c for c in consumers[n.output[0]] if c.op_type != "QuantizeLinear"]
        if not readers:
            continue
        count += 1
        for c in readers:
            ops[c.op_type] += 1
    return {"count": count, "ops": dict(sorted(ops.items()))}


def _depthwise_convs(path: str | Path) -> int:
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    return sum(1 for n in model.graph.node if n.op_type == "Conv" and any(
        a.name == "group" and helper.get_attribute_value(a) > 1 for a in n.attribute))


def speed_gate(fp32_path: str | Path, candidates: dict, *, input_size: tuple | None = None, batch: int | None = None,
               threads: int = 2, seconds: float = 0.5, warmup: int = 5, rounds: int = 5) -> SpeedGate:
    """Time fp32 and each candidate (name → path) side by side with ``bench.benchmark_many``.

    The runs are interleaved in rounds, so drift on a shared machine lands on all alike and the ratios are
    fair; ``seconds`` of timed work per configuration keeps an export quick.
    """
    from ..runtime.bench import benchmark_many

    names = list(candidates)
    paths = [fp32_path] + [candidates[n] for n in names]
    results = benchmark_many(paths, threads=threads, batch_sizes=(batch or 1,), warmup=warmup, seconds=seconds,
                             rounds=rounds, input_size=input_size)
    p50 = [r.batches[0].latency.p50_ms for r in results]
    fp32_ms, cand_ms = p50[0], dict(zip(names, p50[1:]))
    ratios = {n: ms / fp32_ms for n, ms in cand_ms.items()}
    islands = {n: float_islands(candidates[n]) for n in names}
    vnni, depthwise = cpu_has_vnni(), _depthwise_convs(fp32_path)
    causes: list[str] = []
    if names and min(ratios.values()) >= 1.0:
        causes = explain_slow_int8(islands[names[0]], vnni, depthwise, fp32_ms, _count_ops(fp32_path, "ConvTranspose"))
    method = (f"bench.benchmark_many: {threads} threads, batch {batch or 1}, {warmup} warmup runs, ~{seconds:g} s of "
              f"timed runs per model interleaved in {rounds} rounds; p50 latency")
    return SpeedGate(fp32_ms, cand_ms, ratios, threads, batch or 1, method, islands, vnni, depthwise, tuple(causes))


def _count_ops(path: str | Path, op_type: str) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return sum(1 for n in model.graph.node if n.op_type == op_type)


def explain_slow_int8(islands: dict, vnni: bool | None, depthwise: int, fp32_ms: float, conv_transpose: int) -> list[str]:
    """Likely reasons an int8 graph is not faster than its fp32 on onnxruntime's CPU provider, most likely first."""
    causes = []
    if islands.get("count"):
        ops = ", ".join(f"{op}×{n}" for op, n in islands["ops"].items())
        causes.append(f"{islands['count']} Q/DQ round trips: onnxruntime has no int8 kernel or fusion for {ops}, so "
                      "each runs in float between a DequantizeLinear and a QuantizeLinear")
    if vnni is False:
        causes.append("this CPU lacks VNNI (no avx512_vnni/avx_vnni flag): int8 dot products take three "
                      "instructions instead of one, which eats most of int8's advantage")
    if depthwise:
        causes.append(f"{depthwise} depthwise convolutions: onnxruntime's int8 depthwise kernel is 1.5–3× slower than "
                      "its fp32 NCHWc one on early, narrow layers (measured), so int8 gains only on the 1×1 convolutions")
    if conv_transpose:
        causes.append(f"{conv_transpose} ConvTranspose: no int8 kernel on the CPU provider, it runs in float")
    if fp32_ms < 0.3:
        causes.append(f"the model is tiny ({fp32_ms:.3f} ms in fp32): per-operator overhead, not arithmetic, "
                      "dominates, and int8 adds quantize/dequantize operators")
    if not causes:
        causes.append("no structural cause found; on a busy machine timings drift — re-measure with `edgecnn bench`")
    return causes


# -------------------------------------------------------------------------------------------------- the step


@dataclass(frozen=True)
class Int8Result:
    """What ``build_int8`` produced and why; ``to_dict()`` is the manifest's ``int8`` record."""

    path: Path | None  # the int8 artifact written, or None when the auto policy kept fp32
    kept: str  # "int8", "mixed" (some nodes in float) or "fp32"
    policy: str
    method: str  # calibration method used
    target: dict
    judged: bool  # False: random weights, agreement reported but not used to decide
    agreement: Agreement | None  # of the shipped int8 artifact (or of the best candidate when fp32 was kept)
    calibration: dict  # method -> Agreement (several when auto)
    calibration_images: int
    selection_images: int
    form: dict  # graph rewrites: hard activations decomposed, scales folded
    sensitivity: tuple  # LayerSensitivity, most sensitive first
    fallback_nodes: tuple  # nodes computed in float in the shipped artifact
    fallback_rounds: tuple  # ({"nodes": k, "agreement": {...}}, ...)
    speed: SpeedGate | None
    decision: str
    warnings: tuple = ()
    notes: tuple = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "kept": self.kept,
            "policy": self.policy,
            "calibration_method": self.method,
            "target": self.target,
            "judged": self.judged,
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "calibration_candidates": {m: a.to_dict() for m, a in self.calibration.items()},
            "calibration_images": self.calibration_images,
            "selection_images": self.selection_images,
            "form": self.form,
            "sensitivity": {"layers": len(self.sensitivity),
                            "most_sensitive": [s.to_dict() for s in self.sensitivity[:SENSITIVITY_REPORTED]]},
            "fallback": {"nodes": list(self.fallback_nodes), "rounds": list(self.fallback_rounds)},
            "speed_gate": self.speed.to_dict() if self.speed else None,
            "decision": self.decision,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def build_int8(fp32_path: str | Path, dst: str | Path, arrays: np.ndarray, *, task: str = "classification",
               method: str = "minmax", policy: str = "static", input_name: str = "input", batch: int | None = None,
               input_size: tuple | None = None, judge_accuracy: bool = True, target: dict | None = None,
               speed: bool = True, threads: int = 2, speed_seconds: float = 0.5, max_fallback: int | None = None,
               progress: Callable[[str], None] | None = None) -> Int8Result:
    """Quantize ``fp32_path`` to int8 at ``dst``: calibrate, check agreement, fall back, gate on speed.

    Args:
        arrays: preprocessed calibration images (N×C×H×W float32); a held-out slice judges agreement.
        task: ``classification`` or ``segmentation`` (picks the agreement measure).
        method: ``minmax``, ``entropy``, ``percentile``, or ``auto`` (each; keep the best agreement).
        policy: ``static`` ships int8 (mixed if the fallback needed it) and warns when it is not faster;
            ``auto`` keeps the fastest of fp32, int8 and mixed that meets the target (fp32: ``path`` is None).
        judge_accuracy: False for untrained (random) weights: their outputs are near-ties, so agreement says
            nothing about a trained model; it is reported, no fallback is made, and auto decides on speed.
        target: agreement thresholds (default ``DEFAULT_TARGETS[task]``), e.g. ``{"top1": 0.98}``.
        speed: run the speed gate (fp32 and int8 timed side by side, ``threads`` threads, batch 1).
        max_fallback: most nodes kept in float (default: a quarter of the quantized nodes, at least 4).
        progress: called with a short description of each sub-step.

    Raises:
        InputError: an unknown method or policy.
    """
    if method not in CALIBRATION_CHOICES:
        raise InputError(f"unknown calibration method '{method}'; use one of {', '.join(CALIBRATION_CHOICES)}")
    if policy not in POLICIES:
        raise InputError(f"unknown int8 policy '{policy}'; use 'static' or 'auto'")
    say = progress or (lambda _msg: None)
    target = dict(target or DEFAULT_TARGETS.get(task, DEFAULT_TARGETS["classification"]))
    dst = Path(dst)
    notes: list[str] = []
    warnings: list[str] = []
    work = Path(tempfile.mkdtemp(prefix=".int8-", dir=dst.parent))
    try:
        twin = work / "twin.onnx"
        preprocess_for_quantization(fp32_path, twin)
        model = onnx.load(str(twin))
        form = int8_form(model)
        onnx.save(model, str(twin))

        calib, select = _split(arrays)
        if select is arrays:
            notes.append(f"only {len(arrays)} calibration images: agreement judged on the calibration images "
                         "themselves (give more with --calib for a held-out check)")
        reference = run_model(fp32_path, select, input_name=input_name, batch=batch)[0]

        def evaluate(path: Path) -> Agreement:
            return agreement(reference, run_model(path, select, input_name=input_name, batch=batch)[0], task)

        # 1. calibration: one method, or each of them with the best agreement kept
        methods = CALIBRATION_METHODS if method == "auto" else (method,)
        caches, scored, folded = {}, {}, 0
        for m in methods:
            say(f"calibrate {m}")
            caches[m] = calibrate(twin, calib, work / f"{m}.calib.json", method=m, input_name=input_name, batch=batch)
            report = quantize_int8(twin, work / f"int8.{m}.onnx", method=m, calibration_cache=caches[m])
            folded = report.scales_folded
            scored[m] = evaluate(work / f"int8.{m}.onnx")
        chosen = max(methods, key=lambda m: scored[m].score())
        best_path, best = work / f"int8.{chosen}.onnx", scored[chosen]
        form = {"hardswish_decomposed": form["HardSwish"], "hardsigmoid_decomposed": form["HardSigmoid"],
                "scales_folded": folded}

        # 2. per-layer sensitivity
        say("layer sensitivity")
        sens = layer_sensitivity(twin, best_path, select[:SENSITIVITY_IMAGES], input_name=input_name, batch=batch)

        # 3. fallback of the most sensitive nodes to float until the target is met
        rounds: list[dict] = []
        mixed_path, mixed, fallback = None, None, ()
        if not judge_accuracy:
            notes.append("random weights: agreement is reported but not judged, so no layer was moved to float")
        elif not best.meets(target):
            limit = min(len(sens), max_fallback if max_fallback is not None else max(4, len(sens) // 4))
            steps = sorted({2 ** i for i in range(12) if 2 ** i < limit} | {limit}) if limit else []
            for k in steps:
                nodes = tuple(s.node for s in sens[:k])
                say(f"fallback {k} node(s) to float")
                path = work / f"mixed.{k}.onnx"
                report = quantize_int8(twin, path, method=chosen, calibration_cache=caches[chosen], exclude_nodes=nodes)
                ag = evaluate(path)
                rounds.append({"nodes": k, "float_nodes": list(report.float_nodes), "agreement": ag.to_dict()})
                if ag.score() > (mixed or best).score():  # a mixed form only counts if it agrees better
                    mixed_path, mixed, fallback = path, ag, report.float_nodes
                if ag.meets(target):
                    break
            if not rounds:
                warnings.append(f"int8 agreement target {_fmt(target)} not met ({best.summary()}) and no layer "
                                "could be measured to move to float; check the calibration images")
            elif not (mixed or best).meets(target):
                warnings.append(f"int8 agreement target {_fmt(target)} not met even with {rounds[-1]['nodes']} "
                                f"layer(s) in float (best: {(mixed or best).summary()}); check the calibration "
                                "images")

        # 4. candidates that keep accuracy, then the speed gate
        candidates = {"int8": (best_path, best)}
        if mixed_path is not None:
            candidates["mixed"] = (mixed_path, mixed)
        accurate = {n: c for n, c in candidates.items() if not judge_accuracy or c[1].meets(target)}
        gate = None
        if speed:
            say("speed gate")
            timed = accurate if policy == "auto" and accurate else candidates
            gate = speed_gate(fp32_path, {n: p for n, (p, _) in timed.items()}, input_size=input_size, batch=batch,
                              threads=threads, seconds=speed_seconds)

        kept, decision = _decide(policy, candidates, accurate, gate, judge_accuracy, target)
        if kept == "fp32":  # no int8 artifact ships: say so where the export's notes are shown
            warnings.append(f"no int8 artifact written: {decision}")
        if kept != "fp32":
            os.replace(candidates[kept][0], dst)
        shipped = candidates[kept][1] if kept != "fp32" else (mixed if "mixed" in accurate else best)
        if gate is not None and kept != "fp32" and gate.ratios.get(kept, 0) >= 1.0:
            warnings.append(f"int8 is not faster than fp32 here ({gate.candidates_ms[kept]:.3f} ms vs "
                            f"{gate.fp32_ms:.3f} ms, {threads} threads, batch {gate.batch}): " + "; ".join(gate.causes)
                            + (". Use --int8 auto to keep the faster form" if policy == "static" else ""))
        return Int8Result(
            path=dst if kept != "fp32" else None, kept=kept, policy=policy, method=chosen, target=target,
            judged=judge_accuracy, agreement=shipped, calibration=scored, calibration_images=len(calib),
            selection_images=len(select), form=form, sensitivity=sens,
            fallback_nodes=fallback if kept == "mixed" else (), fallback_rounds=tuple(rounds), speed=gate,
            decision=decision, warnings=tuple(warnings), notes=tuple(notes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _split(arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibration part and held-out selection slice (a quarter, at most SELECTION_MAX; all of it when few)."""
    n = len(arrays)
    if n < 16:
        return arrays, arrays
    k = min(SELECTION_MAX, n // 4)
    return arrays[: n - k], arrays[n - k:]


def _fmt(target: dict) -> str:
    return ", ".join(f"{k} ≥ {v}" for k, v in target.items())


def _decide(policy: str, candidates: dict, accurate: dict, gate: SpeedGate | None, judged: bool,
            target: dict) -> tuple[str, str]:
    """Which form to ship, and the reason in words."""
    ms = (lambda n: gate.candidates_ms.get(n)) if gate else (lambda n: None)

    def timing(n: str) -> str:
        return f" ({ms(n):.3f} ms vs fp32 {gate.fp32_ms:.3f} ms)" if gate and ms(n) is not None else ""

    if policy == "static":
        name = "mixed" if "mixed" in candidates and ("mixed" in accurate or "int8" not in accurate) else "int8"
        why = "static policy: int8 shipped"
        if name == "mixed":
            why += f" with its most sensitive layers in float to meet {_fmt(target)}"
        return name, why + timing(name)
    if not accurate:
        return "fp32", f"auto policy: kept fp32, no int8 form met the agreement target {_fmt(target)}"
    if gate is None:
        name = "int8" if "int8" in accurate else "mixed"
        return name, "auto policy: no speed gate run; shipped the int8 form that meets the target"
    timed = {n: ms(n) for n in accurate if ms(n) is not None}
    name = min(timed, key=timed.get)
    if timed[name] >= gate.fp32_ms:
        return "fp32", (f"auto policy: kept fp32, it is the fastest ({gate.fp32_ms:.3f} ms; "
                        + ", ".join(f"{n} {v:.3f} ms" for n, v in timed.items()) + ")")
    basis = "meets the agreement target" if judged else "random weights: chosen on speed alone"
    return name, f"auto policy: {name} is the fastest form and {basis}{timing(name)}"


def check_int8_options(int8, method: str) -> str:
    """Validate the export options early (before minutes of export); returns the policy ``static``/``auto``."""
    if int8 is True or int8 == "static":
        policy = "static"
    elif int8 == "auto":
        policy = "auto"
    else:
        raise InputError(f"int8 must be True, 'static' or 'auto', got {int8!r}")
    if method not in CALIBRATION_CHOICES:
        raise InputError(f"unknown calibration method '{method}'; use one of {', '.join(CALIBRATION_CHOICES)}")
    return policy


def render_report(record: dict, top: int = 10) -> str:
    """The manifest's ``int8`` record as text: decision, calibration, agreement, sensitivity, fallback, speed."""
    lines = [f"int8: kept {record['kept']} — {record['decision']}"]
    ag = record.get("agreement") or {}
    target = ", ".join(f"{k} ≥ {v}" for k, v in (record.get("target") or {}).items())
    judged = "" if record.get("judged", True) else " (random weights: not judged)"
    if ag:
        core = (f"top-1 {ag['top1']:.3f}" if "top1" in ag else f"pixel {ag.get('pixel', 0):.4f} mIoU {ag.get('miou', 0):.4f}")
        lines.append(f"agreement with fp32: {core}, SQNR {ag['sqnr_db']:.1f} dB on {ag['samples']} held-out "
                     f"calibration images; target {target}{judged}")
    cands = record.get("calibration_candidates") or {}
    if len(cands) > 1:
        parts = [(f"{m} top-1 {a['top1']:.3f}" if "top1" in a else f"{m} mIoU {a.get('miou', 0):.4f}")
                 + f" KL {a.get('kl', 0):.5f}" for m, a in cands.items()]
        lines.append("calibration (auto): " + "; ".join(parts) + f" → {record['calibration_method']}")
    else:
        lines.append(f"calibration: {record['calibration_method']} on {record['calibration_images']} images")
    form = record.get("form") or {}
    if form.get("hardswish_decomposed") or form.get("hardsigmoid_decomposed"):
        lines.append(f"int8 form: {form['hardswish_decomposed']} HardSwish and {form['hardsigmoid_decomposed']} "
                     f"HardSigmoid rewritten as int8 Add/Mul, {form.get('scales_folded', 0)} scales folded")
    sens = (record.get("sensitivity") or {}).get("most_sensitive") or []
    if sens:
        lines.append(f"most sensitive layers (of {record['sensitivity']['layers']}; dB of SQNR lost at the layer):")
        width = max(len(s["node"]) for s in sens[:top])
        lines.append(f"  {'node'.ljust(width)}  {'op':<16} {'out SQNR':>8} {'lost':>6} {'weights':>8}")
        for s in sens[:top]:
            w = "-" if s.get("weight_sqnr_db") is None else f"{s['weight_sqnr_db']:.1f}"
            lines.append(f"  {s['node'].ljust(width)}  {s['op_type']:<16} {s['sqnr_db']:8.1f} {s['loss_db']:6.1f} {w:>8}")
    fb = record.get("fallback") or {}
    for r in fb.get("rounds") or []:
        a = r["agreement"]
        core = f"top-1 {a['top1']:.3f}" if "top1" in a else f"mIoU {a.get('miou', 0):.4f}"
        lines.append(f"fallback: {r['nodes']} layer(s) in float → {core}, {a['sqnr_db']:.1f} dB")
    if fb.get("nodes"):
        lines.append("float layers shipped: " + ", ".join(fb["nodes"]))
    gate = record.get("speed_gate")
    if gate:
        times = ", ".join(f"{n} {ms:.3f} ms ({gate['ratios'][n]:.2f}×)" for n, ms in gate["candidates_ms"].items())
        lines.append(f"speed gate: fp32 {gate['fp32_ms']:.3f} ms, {times} [{gate['threads']} threads, batch "
                     f"{gate['batch']}; VNNI {'yes' if gate['vnni'] else 'no' if gate['vnni'] is False else '?'}]")
        for name, rt in (gate.get("round_trips") or {}).items():
            if rt.get("count"):
                lines.append(f"  {name}: {rt['count']} Q/DQ round trips left around " +
                             ", ".join(f"{op}×{n}" for op, n in rt["ops"].items()))
        for cause in gate.get("causes") or []:
            lines.append(f"  likely cause: {cause}")
    for w in record.get("warnings") or []:
        lines.append(f"warning: {w}")
    for n in record.get("notes") or []:
        lines.append(f"note: {n}")
    return "\n".join(lines)
