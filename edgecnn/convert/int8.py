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

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from .agreement import Agreement, _iter_outputs, _kl, _sqnr, agreement, run_model  # noqa: F401  (re-exported)
from .bias_correction import input_means
from .int8_report import render_report  # noqa: F401 - re-exported
from .options import INT8_POLICIES as POLICIES  # noqa: F401 - re-exported
from .options import STATIC_METHODS as CALIBRATION_METHODS
from .options import Int8Options
from .quantize import (
    QuantizeReport,
    calibrate,
    int8_form,
    preprocess_for_quantization,  # noqa: F401
    quantization_twin,
    quantize_int8,
    shapes_complete,
)
from .sensitivity import (
    SENSITIVITY_IMAGES,
    _dequantized_pairs,  # noqa: F401
    layer_sensitivity,
)
from .speed import (
    SpeedGate,
    explain_slow_int8,  # noqa: F401
    speed_gate,
)

# Agreement of int8 with fp32 on the held-out selection slice that counts as "keeps accuracy". Disagreements are
# near-ties that go both ways, so accuracy moves far less than agreement (measured: 99% agreement, ±0.5 point);
# 97% tolerates one disagreement in 34–48 selection images (the pipeline holds out 48 for trained weights),
# where 98% would let a single near-tie
# trigger a fallback that costs speed and, on a slice that small, buys nothing measurable.
DEFAULT_TARGETS = {"classification": {"top1": 0.97}, "segmentation": {"pixel": 0.98, "miou": 0.95}}
SELECTION_MAX = 48  # most calibration images held out to judge agreement
SENSITIVITY_REPORTED = 15  # layers listed in the manifest


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
    shipped: str = ""  # the candidate shipped: "int8", "mixed", "stem:K" (first K nodes in float) or "fp32"

    def to_dict(self) -> dict:
        return {
            "kept": self.kept,
            "candidate": self.shipped or self.kept,
            "policy": self.policy,
            "calibration_method": self.method,
            "target": self.target,
            "judged": self.judged,
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "calibration_candidates": {m: a.to_dict() for m, a in self.calibration.items()},
            "calibration_images": self.calibration_images,
            "selection_images": self.selection_images,
            "form": self.form,
            "sensitivity": {
                "layers": len(self.sensitivity),
                "most_sensitive": [s.to_dict() for s in self.sensitivity[:SENSITIVITY_REPORTED]],
            },
            "fallback": {"nodes": list(self.fallback_nodes), "rounds": list(self.fallback_rounds)},
            "speed_gate": self.speed.to_dict() if self.speed else None,
            "decision": self.decision,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def build_int8(
    fp32_path: str | Path,
    dst: str | Path,
    arrays: np.ndarray,
    options: Int8Options | None = None,
    *,
    task: str = "classification",
    method: str = "minmax",
    policy: str = "static",
    input_name: str = "input",
    batch: int | None = None,
    input_size: tuple | None = None,
    judge_accuracy: bool = True,
    target: dict | None = None,
    speed: bool = True,
    threads: int = 2,
    speed_seconds: float = 0.5,
    max_fallback: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Int8Result:
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
        options: an ``Int8Options``; when given, its ``policy``, ``calib_method``, ``speed``, ``threads``,
            ``speed_seconds`` and ``max_fallback`` take the place of the keywords of the same meaning.

    Raises:
        InputError: an unknown method or policy.
    """
    if options is None:  # the keyword form: checked by the same dataclass
        options = Int8Options(
            policy=policy,
            calib_method=method,
            speed=speed,
            threads=threads,
            speed_seconds=speed_seconds,
            max_fallback=max_fallback,
        )
    method, policy, speed = options.calib_method, options.policy, options.speed
    threads, speed_seconds, max_fallback = options.threads, options.speed_seconds, options.max_fallback
    say = progress or (lambda _msg: None)
    target = dict(target or DEFAULT_TARGETS.get(task, DEFAULT_TARGETS["classification"]))
    dst = Path(dst)
    notes: list[str] = []
    warnings: list[str] = []
    work = Path(tempfile.mkdtemp(prefix=".int8-", dir=dst.parent))
    try:
        model = onnx.load(str(fp32_path))
        complete = shapes_complete(model)
        model = quantization_twin(fp32_path, model if complete else None)
        form = int8_form(model)
        if form["HardSwish"] or form["HardSigmoid"] or not complete:
            twin = work / "twin.onnx"
            onnx.save(model, str(twin))
        else:  # nothing rewritten and every shape known: the fp32 file is the twin (ResNet50: a 100 MB write saved)
            twin = Path(fp32_path)
        del model

        calib, select = _split(arrays)
        if select is arrays:
            notes.append(
                f"only {len(arrays)} calibration images: agreement judged on the calibration images "
                "themselves (give more with --calib for a held-out check)"
            )
        reference = run_model(fp32_path, select, input_name=input_name, batch=batch)[0]

        def evaluate(path: Path) -> Agreement:
            return agreement(reference, run_model(path, select, input_name=input_name, batch=batch)[0], task)

        # 1. calibration: one method, or each of them with the best agreement kept; trained weights get their
        # biases corrected for the mean shift of weight rounding (random weights: nothing to keep accurate)
        means = None
        if judge_accuracy and options.bias_correction:
            say("bias correction")
            means = input_means(twin, calib, input_name=input_name, batch=batch)
        methods = CALIBRATION_METHODS if method == "auto" else (method,)
        chosen, caches, scored, report = _calibrate_methods(
            twin, calib, methods, work, input_name, batch, evaluate, say, means, options.weight_bits
        )
        best_path, best = work / f"int8.{chosen}.onnx", scored[chosen]
        form = {
            "hardswish_decomposed": form["HardSwish"],
            "hardsigmoid_decomposed": form["HardSigmoid"],
            "scales_folded": report.scales_folded,
            "biases_corrected": report.biases_corrected,
            "weight_bits": options.weight_bits,
        }

        # 2. per-layer sensitivity: what the fallback acts on and the report ranks, so only for judged weights
        sens = ()
        if judge_accuracy:
            say("layer sensitivity")
            sens = layer_sensitivity(twin, best_path, select[:SENSITIVITY_IMAGES], input_name=input_name, batch=batch)

        # 3. forms with layers in float, until the target is met: float stems, then the most sensitive layers
        def requantize(path: Path, nodes: tuple):
            return quantize_int8(
                twin,
                path,
                method=chosen,
                calibration_cache=caches[chosen],
                exclude_nodes=nodes,
                bias_means=means,
                weight_bits=options.weight_bits,
            )

        # float stems first: a float prefix costs no speed (a stem convolution reads 3 channels, too few for int8
        # to pay, and there is one float→int8 boundary, not two per layer), so they are tried before scattered
        # layers; under the auto policy they are also the speed-aware forms the gate times
        candidates, floats = {"int8": (best_path, best)}, {"int8": ()}
        if (judge_accuracy and not best.meets(target)) or (policy == "auto" and speed):
            for name, (path, ag, nodes) in _stem_candidates(twin, (), work, requantize, evaluate, say).items():
                candidates[name], floats[name] = (path, ag), nodes
        stem_meets = any(c[1].meets(target) for n, c in candidates.items() if n.startswith("stem:"))
        rounds: list[dict] = []
        mixed = None
        if not judge_accuracy:
            notes.append(
                "random weights: agreement is reported but not judged, so no layer was moved to float "
                "(and per-layer sensitivity, which only that decision uses, was not measured)"
            )
        elif not best.meets(target) and not stem_meets:
            limit = min(len(sens), max_fallback if max_fallback is not None else max(4, len(sens) // 4))
            mixed_path, mixed, fallback, rounds = _fallback(sens, limit, best, target, work, requantize, evaluate, say)
            if mixed_path is not None:
                candidates["mixed"], floats["mixed"] = (mixed_path, mixed), tuple(fallback)
            warnings.extend(_fallback_warnings(rounds, best, mixed, target))

        # 4. the speed gate over the candidates (auto: those that keep accuracy), then the decision
        accurate = {n: c for n, c in candidates.items() if not judge_accuracy or c[1].meets(target)}
        gate = None
        if speed:
            say("speed gate")
            timed = accurate if policy == "auto" and accurate else candidates
            gate = speed_gate(
                fp32_path,
                {n: p for n, (p, _) in timed.items()},
                input_size=input_size,
                batch=batch,
                threads=threads,
                seconds=speed_seconds,
            )

        name, decision = _decide(policy, candidates, accurate, gate, judge_accuracy, target)
        kept = name if name in ("int8", "fp32") else "mixed"  # a float stem is a mixed form too
        if kept == "fp32":  # no int8 artifact ships: say so where the export's notes are shown
            warnings.append(f"no int8 artifact written: {decision}")
        if kept != "fp32":
            os.replace(candidates[name][0], dst)
        shipped = (
            candidates[name][1]
            if kept != "fp32"
            else max((c[1] for c in accurate.values()), key=Agreement.score, default=best)
        )
        if gate is not None and kept != "fp32" and gate.ratios.get(name, 0) >= 1.0:
            warnings.append(_not_faster(gate, name, threads, policy))
        return Int8Result(
            path=dst if kept != "fp32" else None,
            kept=kept,
            policy=policy,
            method=chosen,
            target=target,
            judged=judge_accuracy,
            agreement=shipped,
            calibration=scored,
            calibration_images=len(calib),
            selection_images=len(select),
            form=form,
            sensitivity=sens,
            fallback_nodes=tuple(floats.get(name, ())) if kept == "mixed" else (),
            fallback_rounds=tuple(rounds),
            speed=gate,
            decision=decision,
            warnings=tuple(warnings),
            notes=tuple(notes),
            shipped=name,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _calibrate_methods(
    twin: Path,
    calib: np.ndarray,
    methods: tuple,
    work: Path,
    input_name: str,
    batch,
    evaluate,
    say,
    means: dict | None,
    weight_bits: int,
) -> tuple[str, dict, dict, QuantizeReport]:
    """Calibrate and quantize with each method; returns the best-agreeing one, the caches, scores and the
    quantizer's report (the graph rewrites are the same whatever the method)."""
    caches, scored, report = {}, {}, None
    for m in methods:
        say(f"calibrate {m}")
        caches[m] = calibrate(twin, calib, work / f"{m}.calib.json", method=m, input_name=input_name, batch=batch)
        report = quantize_int8(
            twin,
            work / f"int8.{m}.onnx",
            method=m,
            calibration_cache=caches[m],
            bias_means=means,
            weight_bits=weight_bits,
        )
        scored[m] = evaluate(work / f"int8.{m}.onnx")
    return max(methods, key=lambda m: scored[m].score()), caches, scored, report


def _fallback_warnings(rounds: list, best: Agreement, mixed: Agreement | None, target: dict) -> list[str]:
    if not rounds:
        return [
            f"int8 agreement target {_fmt(target)} not met ({best.summary()}) and no layer could be measured "
            "to move to float; check the calibration images"
        ]
    if not (mixed or best).meets(target):
        return [
            f"int8 agreement target {_fmt(target)} not met even with {rounds[-1]['nodes']} layer(s) in float "
            f"(best: {(mixed or best).summary()}); check the calibration images"
        ]
    return []


def _not_faster(gate: SpeedGate, name: str, threads: int, policy: str) -> str:
    return (
        f"int8 is not faster than fp32 here ({gate.candidates_ms[name]:.3f} ms vs {gate.fp32_ms:.3f} ms, "
        f"{threads} threads, batch {gate.batch}): "
        + "; ".join(gate.causes)
        + (". Use --int8 auto to keep the faster form" if policy == "static" else "")
    )


def _fallback(sens, limit: int, best: Agreement, target: dict, work: Path, requantize, evaluate, say):
    """Move the 1, 2, 4 … most sensitive nodes to float until the target is met; returns the best mixed form
    (path, agreement, float nodes) and the rounds tried.

    A mixed form only counts if it is better on a measure the target names (top-1, pixel/mIoU, SQNR), not on
    the KL tie-break alone: float layers inside an int8 graph are expensive (EfficientNet-Lite0 with 14 of them in
    float: 36 ms against int8's 6.9 and fp32's 10.4), so a form that fixes no prediction is not worth them."""
    rounds: list[dict] = []
    mixed_path, mixed, fallback = None, None, ()
    for k in sorted({2**i for i in range(12) if 2**i < limit} | {limit}) if limit else []:
        say(f"fallback {k} node(s) to float")
        path = work / f"mixed.{k}.onnx"
        report = requantize(path, tuple(s.node for s in sens[:k]))
        ag = evaluate(path)
        rounds.append({"nodes": k, "float_nodes": list(report.float_nodes), "agreement": ag.to_dict()})
        if _improves(ag, mixed or best, target):
            mixed_path, mixed, fallback = path, ag, report.float_nodes
        if ag.meets(target):
            break
    return mixed_path, mixed, fallback, rounds


def _improves(candidate: Agreement, current: Agreement, target: dict) -> bool:
    return any((getattr(candidate, k) or 0) > (getattr(current, k) or 0) for k in target)


def _stem_candidates(twin: Path, floats: tuple, work: Path, requantize, evaluate, say) -> dict:
    """The auto policy's speed-aware forms: the first nodes of the graph kept in float ("stem:K").

    A stem convolution reads 3 channels, too few for int8 dot products to pay (measured on MobileNetV2, one
    thread: 673 µs in int8 against 370 µs in fp32), and the first high-resolution depthwise layers gain little,
    while quantizing later means quantizing a larger tensor. Which cut is fastest depends on the model, so a
    few cuts at block boundaries are made and the speed gate times them beside the others.
    """
    cuts = stem_cuts(onnx.load(str(twin)))
    out = {}
    for k in cuts:
        say(f"float stem of {k} node(s)")
        path = work / f"stem.{k}.onnx"
        nodes = tuple(n.name for n in onnx.load(str(twin)).graph.node[:k])
        in_float = tuple(dict.fromkeys(floats + nodes))
        requantize(path, in_float)
        out[f"stem:{k}"] = (path, evaluate(path), in_float)
    return out


# where float stems are cut, as fractions of the convolutions: short ones for speed (a 3-channel stem convolution is
# slower in int8), longer ones for accuracy — EfficientNet-Lite0's most rounding-sensitive weights are its first
# 6 blocks' (each alone costs the logits 39–41 dB; float through 17 nodes: 0.957 agreement on unseen photos
# against 0.930 through 3, at 0.6× fp32's time)
STEM_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.3)


def stem_cuts(model: onnx.ModelProto, fractions: tuple = STEM_FRACTIONS) -> list[int]:
    """Node counts K at which the graph's first K nodes end in one tensor (a block boundary), nearest to each
    fraction of its convolutions; distinct and ascending."""
    graph = model.graph
    last_use = {t: i for i, n in enumerate(graph.node) for t in n.input}
    live, cuts = set(), []
    for i, node in enumerate(graph.node):
        live |= set(node.output)
        live = {t for t in live if last_use.get(t, -1) > i}
        if len(live) == 1:
            cuts.append(i + 1)
    convs = [i for i, n in enumerate(graph.node) if n.op_type in ("Conv", "Gemm", "MatMul")]
    if not cuts or len(convs) < 8:
        return []
    wanted = {min(cuts, key=lambda c: abs(c - (convs[int(f * len(convs))] + 1))) for f in fractions}
    return sorted(k for k in wanted if k < len(graph.node) // 2)


def _split(arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Calibration part and held-out selection slice (a quarter, at most SELECTION_MAX; all of it when few)."""
    n = len(arrays)
    if n < 16:
        return arrays, arrays
    k = min(SELECTION_MAX, n // 4)
    return arrays[: n - k], arrays[n - k :]


def _fmt(target: dict) -> str:
    return ", ".join(f"{k} ≥ {v}" for k, v in target.items())


def _decide(
    policy: str, candidates: dict, accurate: dict, gate: SpeedGate | None, judged: bool, target: dict
) -> tuple[str, str]:
    """Which form to ship, and the reason in words."""
    ms = (lambda n: gate.candidates_ms.get(n)) if gate else (lambda n: None)

    def timing(n: str) -> str:
        return f" ({ms(n):.3f} ms vs fp32 {gate.fp32_ms:.3f} ms)" if gate and ms(n) is not None else ""

    if policy == "static":
        return _decide_static(candidates, accurate, gate, target, timing)
    if not accurate:
        return "fp32", f"auto policy: kept fp32, no int8 form met the agreement target {_fmt(target)}"
    if gate is None:
        name = "int8" if "int8" in accurate else "mixed"
        return name, "auto policy: no speed gate run; shipped the int8 form that meets the target"
    timed = {n: ms(n) for n in accurate if ms(n) is not None}
    name = min(timed, key=timed.get)
    if timed[name] >= gate.fp32_ms:
        return "fp32", (
            f"auto policy: kept fp32, it is the fastest ({gate.fp32_ms:.3f} ms; "
            + ", ".join(f"{n} {v:.3f} ms" for n, v in timed.items())
            + ")"
        )
    basis = "meets the agreement target" if judged else "random weights: chosen on speed alone"
    what = f"{name} (int8 with its first {name[5:]} nodes in float)" if name.startswith("stem:") else name
    return name, f"auto policy: {what} is the fastest form and {basis}{timing(name)}"


def _decide_static(candidates: dict, accurate: dict, gate: SpeedGate | None, target: dict, timing) -> tuple[str, str]:
    """Static policy: int8 when it meets the target; otherwise the most accurate form (agreement, then KL) — float
    stems, or the sensitivity fallback — that meets it, or failing that the most accurate of all. (The auto
    policy is the speed-first one: the fastest form that meets the target.) A form the speed gate measured slower
    than fp32 is passed over while another is faster: it would be both less accurate and slower than fp32
    (EfficientNet-Lite0 with 14 scattered float layers: 2.8× fp32's time)."""
    names = list(candidates)
    if gate is not None:
        fast = [n for n in names if gate.candidates_ms.get(n) is not None and gate.candidates_ms[n] < gate.fp32_ms]
        names = fast or names
    kept = [n for n in names if n in accurate]
    if "int8" in kept:
        name = "int8"
    else:
        name = max(kept or names, key=lambda n: candidates[n][1].score())
    why = "static policy: int8 shipped"
    if name.startswith("stem:"):
        why += f" with its first {name[5:]} nodes in float"
    elif name == "mixed":
        why += " with its most sensitive layers in float"
    if kept and name != "int8":
        why += f", the most accurate form that meets {_fmt(target)}"
    elif not kept:
        why += f"; no form met {_fmt(target)}, this one agrees best"
    return name, why + timing(name)


def check_int8_options(int8, method: str) -> str:
    """Validate the export options early (before minutes of export); returns the policy ``static``/``auto``."""
    return Int8Options(policy="static" if int8 is True else int8, calib_method=method).policy
