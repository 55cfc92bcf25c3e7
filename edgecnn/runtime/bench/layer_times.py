"""Per-layer time of an fp32 file and its int8 twin on onnxruntime's CPU provider, and what a per-layer mix could gain.

``edgecnn bench`` times whole files. When an int8 file is not as much faster than its fp32 as hoped, the question is
whether a smarter mix (each layer in the precision that is faster *for it*) could do better, or whether the kernels
themselves leave no room. ``precision_bound`` answers it from onnxruntime's own profiler:

* both files run the same input, interleaved in chunks (so drift on a shared machine lands on both), with
  onnxruntime's profiling on; each kernel's time is the median over the runs;
* compute layers (Conv/Gemm/MatMul and their QLinear forms) are paired across the two graphs by their activation
  shapes (onnxruntime runs int8 convolutions in NHWC and fp32 ones in NCHWc, so the dims are compared as sorted
  tuples), in execution order within equal shapes;
* the bound is Σ over layers of min(fp32, int8) plus the cheaper of the two files' remaining operators
  (pooling, adds, layout transposes, the input's quantization). A real mix pays a quantize/dequantize and a
  layout change at every precision boundary on top, so no mix on this provider can be faster than the bound:
  when the bound misses a target, the kernels, not the choice of layers, are what stop it.

Profiling adds a few microseconds to every operator: a graph of many small ones reads slower in the profile than in
``edgecnn bench`` (MobileNetV3-Large's int8, with its hard-swish as QLinearAdd + QLinearMul: 1.00× its fp32 in the
profile, 0.76× in peer_bench's timing of the same files). The bound takes the cheaper file's other operators, the
fp32 one's there, so it stays a lower bound; the ratios are what to read.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_COMPUTE = {
    "Conv",
    "Gemm",
    "MatMul",
    "FusedConv",
    "FusedGemm",
    "FusedMatMul",
    "QLinearConv",
    "QGemm",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "NhwcFusedConv",
    "ConvTranspose",
}


@dataclass(frozen=True)
class LayerTime:
    node: str  # the node name in onnxruntime's optimized graph
    op: str
    ms: float  # median kernel time over the profiled runs
    signature: tuple  # sorted dims of the activation input and output: equal across NCHW, NCHWc-reordered and NHWC


@dataclass(frozen=True)
class PrecisionBound:
    """fp32 and int8 per layer on the CPU provider, and the fastest any per-layer mix could be."""

    fp32_ms: float  # sum of kernel medians
    int8_ms: float
    bound_ms: float  # Σ min(fp32, int8) over paired layers + the cheaper file's other operators
    layers: tuple  # (fp32 LayerTime, int8 LayerTime) pairs, in fp32's execution order
    other_fp32_ms: float
    other_int8_ms: float
    unpaired: int  # compute layers that found no partner (counted in "other")
    method: str = ""
    slower_in_int8: tuple = field(default_factory=tuple)  # indices into layers where int8 is slower

    @property
    def int8_ratio(self) -> float:
        return self.int8_ms / self.fp32_ms

    @property
    def bound_ratio(self) -> float:
        return self.bound_ms / self.fp32_ms

    def to_dict(self) -> dict:
        return {
            "fp32_ms": round(self.fp32_ms, 4),
            "int8_ms": round(self.int8_ms, 4),
            "bound_ms": round(self.bound_ms, 4),
            "int8_ratio": round(self.int8_ratio, 3),
            "bound_ratio": round(self.bound_ratio, 3),
            "other_fp32_ms": round(self.other_fp32_ms, 4),
            "other_int8_ms": round(self.other_int8_ms, 4),
            "paired_layers": len(self.layers),
            "unpaired": self.unpaired,
            "slower_in_int8": [
                {
                    "fp32": self.layers[i][0].node,
                    "int8": self.layers[i][1].node,
                    "fp32_ms": round(self.layers[i][0].ms, 4),
                    "int8_ms": round(self.layers[i][1].ms, 4),
                }
                for i in self.slower_in_int8
            ],
            "method": self.method,
        }


def _session(path: Path, threads: int, prefix: str):
    """An onnxruntime session on the CPU with its profiler on (the profile is onnxruntime's own feature)."""
    from ..runner import open_runner

    return open_runner(path, providers="cpu", threads=threads, profile_prefix=prefix).session


def _dims(entry) -> tuple:
    # the profiler lists each input/output as {"float": [dims]}; the activation is the first one
    return tuple(sorted(next(iter(entry[0].values())))) if entry else ()


def _kernel_times(profile_file: str, skip_runs: int) -> list[LayerTime]:
    """Median kernel time per node from one profile, in execution order (the first ``skip_runs`` runs dropped)."""
    with open(profile_file) as f:
        events = json.load(f)
    os.remove(profile_file)
    times, order, meta = defaultdict(list), [], {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        node = name[: -len("_kernel_time")]
        if node not in meta:
            args = e.get("args", {})
            order.append(node)
            meta[node] = (
                args.get("op_name", "?"),
                (_dims(args.get("input_type_shape")), _dims(args.get("output_type_shape"))),
            )
        times[node].append(e["dur"])
    out = []
    for node in order:
        samples = times[node][skip_runs:] or times[node]
        out.append(LayerTime(node, meta[node][0], float(np.median(samples)) / 1000.0, meta[node][1]))
    return out


def _blocked(signature: tuple) -> tuple:
    """Dims rounded up to a multiple of 16: fp32 NCHWc pads channels to its block (24 → 32 on AVX-512)."""
    return tuple(tuple(sorted(-(-d // 16) * 16 for d in dims)) for dims in signature)


def _pair(fp32: list[LayerTime], int8: list[LayerTime]) -> tuple[list, int]:
    """Compute layers of both files paired by activation shapes, in execution order within equal shapes: exact
    shapes first, then shapes equal up to NCHWc's channel padding."""
    left_f = [layer for layer in fp32 if layer.op in _COMPUTE]
    left_i = [layer for layer in int8 if layer.op in _COMPUTE]
    pairs = []
    for key in (lambda layer: layer.signature, lambda layer: _blocked(layer.signature)):
        pool = defaultdict(list)
        for layer in left_i:
            pool[key(layer)].append(layer)
        still = []
        for layer in left_f:
            if pool[key(layer)]:
                pairs.append((layer, pool[key(layer)].pop(0)))
            else:
                still.append(layer)
        taken = {id(b) for _, b in pairs}
        left_f, left_i = still, [layer for layer in left_i if id(layer) not in taken]
    order = {id(layer): i for i, layer in enumerate(fp32)}
    pairs.sort(key=lambda pair: order[id(pair[0])])
    return pairs, len(left_f) + len(left_i)


def precision_bound(
    fp32_path: str | Path,
    int8_path: str | Path,
    *,
    threads: int = 2,
    runs: int = 60,
    chunk: int = 10,
    warmup: int = 5,
    input_shape: tuple | None = None,
    settle_s: float = 0.1,
) -> PrecisionBound:
    """Profile both files (batch 1 unless ``input_shape`` says) interleaved in chunks of ``chunk`` runs, a
    ``settle_s`` pause before each, and pair their layers; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="edgecnn-layers-") as tmp:
        sessions = [_session(Path(p), threads, str(Path(tmp) / f"p{i}")) for i, p in enumerate((fp32_path, int8_path))]
        arg = sessions[0].get_inputs()[0]
        shape = input_shape or tuple(d if isinstance(d, int) and d > 0 else 1 for d in arg.shape)
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        feeds = [{s.get_inputs()[0].name: x} for s in sessions]  # the same array, under each file's input name
        for s, feed in zip(sessions, feeds):
            for _ in range(warmup):
                s.run(None, feed)
        for _ in range(max(1, runs // chunk)):
            for s, feed in zip(sessions, feeds):
                time.sleep(settle_s)
                s.run(None, feed)  # one untimed run after the pause wakes the thread pool
                for _ in range(chunk):
                    s.run(None, feed)
        # every run is profiled: the warm-up and the untimed run of each chunk are in the medians' samples too,
        # which the median shrugs off (a few slow samples in ~70)
        fp32, int8 = (_kernel_times(s.end_profiling(), warmup) for s in sessions)
    pairs, unpaired = _pair(fp32, int8)
    paired = {id(layer) for pair in pairs for layer in pair}
    other_f = sum(layer.ms for layer in fp32 if id(layer) not in paired)
    other_i = sum(layer.ms for layer in int8 if id(layer) not in paired)
    total_f, total_i = sum(layer.ms for layer in fp32), sum(layer.ms for layer in int8)
    bound = sum(min(a.ms, b.ms) for a, b in pairs) + min(other_f, other_i)
    slower = tuple(i for i, (a, b) in enumerate(pairs) if b.ms > a.ms)
    method = (
        f"onnxruntime profiler, CPU provider, {threads} threads, input {list(shape)}, {runs} runs each "
        f"interleaved in chunks of {chunk} ({settle_s * 1000:g} ms pause + 1 untimed run before each); "
        "median kernel time per node"
    )
    return PrecisionBound(total_f, total_i, bound, tuple(pairs), other_f, other_i, unpaired, method, slower)
