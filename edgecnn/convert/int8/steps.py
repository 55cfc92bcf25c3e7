"""The steps of ``build_int8``, each returning a small record: the workspace (twin, image split, fp32 reference),
calibration, per-layer sensitivity, and the forms with layers in float (float stems, the sensitivity fallback)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

from .agreement import Agreement
from .bias_correction import input_means
from .calibrate import calibrate
from .options import Int8Options
from .quantize import QuantizeReport, quantize_int8
from .request import Int8Request, Workspace, split_images
from .sensitivity import SENSITIVITY_IMAGES, LayerSensitivity, layer_sensitivity
from .stems import stem_cuts
from .twin import int8_form, quantization_twin, shapes_complete


def open_workspace(request: Int8Request, options: Int8Options, work: Path) -> Workspace:
    """The twin to quantize (``int8_form`` applied), the images split, and fp32's outputs on the selection."""
    model = onnx.load(str(request.fp32_path))
    complete = shapes_complete(model)
    model = quantization_twin(request.fp32_path, model if complete else None)
    rewrites = int8_form(model)
    if rewrites["HardSwish"] or rewrites["HardSigmoid"] or not complete:
        twin = work / "twin.onnx"
        onnx.save(model, str(twin))
    else:  # nothing rewritten and every shape known: the fp32 file is the twin (ResNet50: a 100 MB write saved)
        twin = request.fp32_path
    del model
    calib, select = split_images(request.arrays)
    ws = Workspace(request, options, work, twin, rewrites, calib, select, reference=None)
    ws.reference = ws.run(request.fp32_path, select)
    if select is request.arrays:
        ws.notes.append(
            f"only {len(request.arrays)} calibration images: agreement judged on the calibration images "
            "themselves (give more with --calib for a held-out check)"
        )
    return ws


@dataclass(frozen=True)
class Calibration:
    """The calibration chosen: its method, every method's cache and agreement, and the quantizer's report."""

    method: str
    caches: dict  # method -> calibration cache path
    scored: dict  # method -> Agreement
    report: QuantizeReport
    means: dict | None  # bias correction's input means (None: no correction)

    def path(self, ws: Workspace) -> Path:
        return ws.work / f"int8.{self.method}.onnx"

    @property
    def agreement(self) -> Agreement:
        return self.scored[self.method]


def calibrate_methods(ws: Workspace) -> Calibration:
    """Calibrate and quantize with one method, or each of them with the best agreement kept; trained weights get
    their biases corrected for the mean shift of weight rounding (random weights: nothing to keep accurate)."""
    means = None
    if ws.request.judge_accuracy and ws.options.bias_correction:
        ws.say("bias correction")
        means = input_means(ws.twin, ws.calib, input_name=ws.request.input_name, batch=ws.request.batch)
    caches, scored, report = {}, {}, None
    for m in ws.options.methods:
        ws.say(f"calibrate {m}")
        cache = ws.work / f"{m}.calib.json"
        caches[m] = calibrate(
            ws.twin, ws.calib, cache, method=m, input_name=ws.request.input_name, batch=ws.request.batch
        )
        path = ws.work / f"int8.{m}.onnx"
        report = quantize_int8(
            ws.twin, path, method=m, calibration_cache=caches[m], bias_means=means, weight_bits=ws.options.weight_bits
        )
        scored[m] = ws.evaluate(path)
    # the graph rewrites are the same whatever the method: the last report says them
    chosen = max(ws.options.methods, key=lambda m: scored[m].score())
    return Calibration(chosen, caches, scored, report, means)


def requantize(ws: Workspace, cal: Calibration, path: Path, nodes: tuple) -> QuantizeReport:
    """The chosen calibration quantized again with ``nodes`` computed in float."""
    return quantize_int8(
        ws.twin,
        path,
        method=cal.method,
        calibration_cache=cal.caches[cal.method],
        exclude_nodes=nodes,
        bias_means=cal.means,
        weight_bits=ws.options.weight_bits,
    )


def measure_sensitivity(ws: Workspace, cal: Calibration) -> tuple[LayerSensitivity, ...]:
    """Per-layer sensitivity: what the fallback acts on and the report ranks, so only for judged weights."""
    if not ws.request.judge_accuracy:
        return ()
    ws.say("layer sensitivity")
    images = ws.select[:SENSITIVITY_IMAGES]
    return layer_sensitivity(ws.twin, cal.path(ws), images, input_name=ws.request.input_name, batch=ws.request.batch)


@dataclass(frozen=True)
class Forms:
    """The int8 forms made: name ("int8", "stem:K", "mixed") -> (path, agreement), the nodes each keeps in
    float, and the fallback rounds tried."""

    candidates: dict
    floats: dict
    rounds: tuple = ()


def float_forms(ws: Workspace, cal: Calibration, sens: tuple, target: dict) -> Forms:
    """Forms with layers in float, until the target is met: float stems, then the most sensitive layers.

    Float stems come first: a float prefix costs no speed (a stem convolution reads 3 channels, too few for int8
    to pay, and there is one float→int8 boundary, not two per layer), so they are tried before scattered layers;
    under the auto policy they are also the speed-aware forms the gate times.
    """
    best, judged = cal.agreement, ws.request.judge_accuracy
    candidates, floats = {"int8": (cal.path(ws), best)}, {"int8": ()}
    if (judged and not best.meets(target)) or (ws.options.policy == "auto" and ws.options.speed):
        for name, (path, ag, nodes) in stem_candidates(ws, cal).items():
            candidates[name], floats[name] = (path, ag), nodes
    stem_meets = any(c[1].meets(target) for n, c in candidates.items() if n.startswith("stem:"))
    rounds: list[dict] = []
    if not judged:
        ws.notes.append(
            "random weights: agreement is reported but not judged, so no layer was moved to float "
            "(and per-layer sensitivity, which only that decision uses, was not measured)"
        )
    elif not best.meets(target) and not stem_meets:
        most = ws.options.max_fallback
        limit = min(len(sens), most if most is not None else max(4, len(sens) // 4))
        mixed_path, mixed, in_float, rounds = fallback(ws, cal, sens, limit, target)
        if mixed_path is not None:
            candidates["mixed"], floats["mixed"] = (mixed_path, mixed), tuple(in_float)
        ws.warnings.extend(fallback_warnings(rounds, best, mixed, target))
    return Forms(candidates, floats, tuple(rounds))


def stem_candidates(ws: Workspace, cal: Calibration) -> dict:
    """The speed-aware forms: the first nodes of the graph kept in float ("stem:K"), at the cuts of
    ``stems.stem_cuts``; name -> (path, agreement, float nodes)."""
    out = {}
    for k in stem_cuts(onnx.load(str(ws.twin))):
        ws.say(f"float stem of {k} node(s)")
        path = ws.work / f"stem.{k}.onnx"
        nodes = tuple(n.name for n in onnx.load(str(ws.twin)).graph.node[:k])
        in_float = tuple(dict.fromkeys(nodes))
        requantize(ws, cal, path, in_float)
        out[f"stem:{k}"] = (path, ws.evaluate(path), in_float)
    return out


def fallback(ws: Workspace, cal: Calibration, sens: tuple, limit: int, target: dict):
    """Move the 1, 2, 4 … most sensitive nodes to float until the target is met; returns the best mixed form
    (path, agreement, float nodes) and the rounds tried.

    A mixed form only counts if it is better on a measure the target names (top-1, pixel/mIoU, SQNR), not on
    the KL tie-break alone: float layers inside an int8 graph are expensive (EfficientNet-Lite0 with 14 of them in
    float: 36 ms against int8's 6.9 and fp32's 10.4), so a form that fixes no prediction is not worth them."""
    rounds: list[dict] = []
    best = cal.agreement
    mixed_path, mixed, nodes = None, None, ()
    for k in sorted({2**i for i in range(12) if 2**i < limit} | {limit}) if limit else []:
        ws.say(f"fallback {k} node(s) to float")
        path = ws.work / f"mixed.{k}.onnx"
        report = requantize(ws, cal, path, tuple(s.node for s in sens[:k]))
        ag = ws.evaluate(path)
        rounds.append({"nodes": k, "float_nodes": list(report.float_nodes), "agreement": ag.to_dict()})
        if _improves(ag, mixed or best, target):
            mixed_path, mixed, nodes = path, ag, report.float_nodes
        if ag.meets(target):
            break
    return mixed_path, mixed, nodes, rounds


def _improves(candidate: Agreement, current: Agreement, target: dict) -> bool:
    return any((getattr(candidate, k) or 0) > (getattr(current, k) or 0) for k in target)


def fallback_warnings(rounds: list, best: Agreement, mixed: Agreement | None, target: dict) -> list[str]:
    """What to say when the fallback could not meet the target."""
    if not rounds:
        return [
            f"int8 agreement target {fmt_target(target)} not met ({best.summary()}) and no layer could be measured "
            "to move to float; check the calibration images"
        ]
    if not (mixed or best).meets(target):
        return [
            f"int8 agreement target {fmt_target(target)} not met even with {rounds[-1]['nodes']} layer(s) in float "
            f"(best: {(mixed or best).summary()}); check the calibration images"
        ]
    return []


def fmt_target(target: dict) -> str:
    return ", ".join(f"{k} ≥ {v}" for k, v in target.items())
