"""The int8 speed gate: fp32 and int8 candidates timed side by side, and why int8 may not be faster."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from ...runtime.bench.machine import cpu_has_vnni
from ...runtime.runner import open_runner

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
    runtime: str = "cpu"  # where the forms were timed: onnxruntime's CPU provider, or "openvino"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fp32_ms"] = round(self.fp32_ms, 4)
        d["candidates_ms"] = {k: round(v, 4) for k, v in self.candidates_ms.items()}
        d["ratios"] = {k: round(v, 3) for k, v in self.ratios.items()}
        d["causes"] = list(self.causes)
        return d


def float_islands(path: str | Path) -> dict:
    """Q/DQ round trips left in the graph after onnxruntime's int8 fusions (what it actually runs).

    Counts activation DequantizeLinear nodes that survive optimization (not those of the final outputs): each
    one feeds a float operator onnxruntime had no int8 kernel or fusion for. Returns
    ``{"count": n, "ops": {float op type: n}}``.
    """
    with tempfile.TemporaryDirectory(prefix="edgecnn-opt-") as tmp:
        optimized = Path(tmp) / "opt.onnx"
        open_runner(Path(path), providers="cpu", graph_opt="extended", optimized_model_path=optimized)
        model = onnx.load(str(optimized))
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
    return sum(
        1
        for n in model.graph.node
        if n.op_type == "Conv" and any(a.name == "group" and helper.get_attribute_value(a) > 1 for a in n.attribute)
    )


def speed_gate(
    fp32_path: str | Path,
    candidates: dict,
    *,
    input_size: tuple | None = None,
    batch: int | None = None,
    threads: int = 2,
    seconds: float = 0.5,
    warmup: int = 5,
    rounds: int = 5,
    runtime: str = "cpu",
) -> SpeedGate:
    """Time fp32 and each candidate (name → path) side by side with ``bench.benchmark_many``, on ``runtime``
    (a provider entry: ``"cpu"`` or ``"openvino"``).

    The runs are interleaved in rounds, so drift on a shared machine lands on all alike and the ratios are
    fair; ``seconds`` of timed work per configuration keeps an export quick. Any file the runners open is timed
    (an int8 ``.tflite``/``.pte`` on its own runtime: ``pipeline.target_int8``); float islands and the structural
    causes are onnxruntime's (what its CPU provider fuses), so they are read for an ``.onnx`` on ``"cpu"`` only.
    """
    from ...runtime.bench import benchmark_many

    names = list(candidates)
    paths = [fp32_path] + [candidates[n] for n in names]
    # 20 ms pauses, not bench's 100: onnxruntime's pool threads stop spinning within a few ms and each chunk
    # starts with an untimed run anyway; at 5 rounds × 2 files the longer pause was a second of every export.
    results = benchmark_many(
        paths,
        threads=threads,
        batch_sizes=(batch or 1,),
        warmup=warmup,
        seconds=seconds,
        rounds=rounds,
        input_size=input_size,
        settle_s=0.02,
        providers=[runtime],
    )
    p50 = [r.batches[0].latency.p50_ms for r in results]
    fp32_ms, cand_ms = p50[0], dict(zip(names, p50[1:]))
    ratios = {n: ms / fp32_ms for n, ms in cand_ms.items()}
    is_onnx = Path(fp32_path).suffix == ".onnx"
    onnx_cpu = is_onnx and runtime == "cpu"  # what the structural causes read
    islands = {n: float_islands(candidates[n]) for n in names} if onnx_cpu else {}
    vnni, depthwise = cpu_has_vnni(), _depthwise_convs(fp32_path) if is_onnx else 0
    causes: list[str] = []
    slow = bool(names) and min(ratios.values()) >= 1.0
    if slow and onnx_cpu:
        causes = explain_slow_int8(islands[names[0]], vnni, depthwise, fp32_ms, _count_ops(fp32_path, "ConvTranspose"))
    elif slow:
        causes = [f"on {runtime}, int8 ran no faster than fp32 here: measure with `edgecnn bench --ep {runtime}`"]
    method = (
        f"bench.benchmark_many on {runtime}: {threads} threads, batch {batch or 1}, {warmup} warmup runs, "
        f"~{seconds:g} s of timed runs per model interleaved in {rounds} rounds; p50 latency"
    )
    return SpeedGate(
        fp32_ms, cand_ms, ratios, threads, batch or 1, method, islands, vnni, depthwise, tuple(causes), runtime
    )


def _count_ops(path: str | Path, op_type: str) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return sum(1 for n in model.graph.node if n.op_type == op_type)


def vnni_label() -> str:
    """``with VNNI`` / ``without VNNI`` / ``VNNI unknown``: for the headers of benchmark tables."""
    return {True: "with VNNI", False: "without VNNI"}.get(cpu_has_vnni(), "VNNI unknown")


def explain_slow_int8(
    islands: dict, vnni: bool | None, depthwise: int, fp32_ms: float, conv_transpose: int
) -> list[str]:
    """Likely reasons an int8 graph is not faster than its fp32 on onnxruntime's CPU provider, most likely first."""
    causes = []
    if islands.get("count"):
        ops = ", ".join(f"{op}×{n}" for op, n in islands["ops"].items())
        causes.append(
            f"{islands['count']} Q/DQ round trips: onnxruntime has no int8 kernel or fusion for {ops}, so "
            "each runs in float between a DequantizeLinear and a QuantizeLinear"
        )
    if vnni is False:
        causes.append(
            "this CPU lacks VNNI (no avx512_vnni/avx_vnni flag): int8 dot products take three "
            "instructions instead of one, which eats most of int8's advantage"
        )
    if depthwise:
        causes.append(
            f"{depthwise} depthwise convolutions: onnxruntime's int8 depthwise kernel is 1.5–3× slower than "
            "its fp32 NCHWc one on early, narrow layers (measured), so int8 gains only on the 1×1 convolutions"
        )
    if conv_transpose:
        causes.append(f"{conv_transpose} ConvTranspose: no int8 kernel on the CPU provider, it runs in float")
    if fp32_ms < 0.3:
        causes.append(
            f"the model is tiny ({fp32_ms:.3f} ms in fp32): per-operator overhead, not arithmetic, "
            "dominates, and int8 adds quantize/dequantize operators"
        )
    if not causes:
        causes.append("no structural cause found; on a busy machine timings drift — re-measure with `edgecnn bench`")
    return causes
