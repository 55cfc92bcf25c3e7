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
         With ``Int8Options.runtimes`` (``--int8-for cpu,openvino``) the gate and the choice are made again on
         each further runtime: a float stem that is free on onnxruntime's CPU provider can cost on OpenVINO
         (EfficientNet-Lite0: 1.77 ms against 1.05 ms for the plain file), so where that runtime's choice differs
         it gets a file of its own, ``NAME.int8.RUNTIME.onnx``; the forms themselves are made once.

Each step is a function of ``steps``/``decide`` returning a small record; ``build_int8`` only orders them.
Everything is recorded in an ``Int8Result`` (``to_dict()`` goes into the manifest). No printing here.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .agreement import Agreement, target_names
from .decide import Choice, choose, time_forms
from .options import Int8Options
from .request import Int8Request, Workspace
from .speed import SpeedGate
from .steps import Calibration, Forms, calibrate_methods, float_forms, measure_sensitivity, open_workspace

# Agreement of int8 with fp32 on the held-out selection slice that counts as "keeps accuracy". Disagreements are
# near-ties that go both ways, so accuracy moves far less than agreement (measured: 99% agreement, ±0.5 point);
# 97% tolerates one disagreement in 34–48 selection images (the pipeline holds out 48 for trained weights),
# where 98% would let a single near-tie
# trigger a fallback that costs speed and, on a slice that small, buys nothing measurable.
DEFAULT_TARGETS = {
    "classification": {"top1_agreement": 0.97},
    "segmentation": {"pixel_agreement": 0.98, "mean_iou": 0.95},
}
SENSITIVITY_REPORTED = 15  # layers listed in the manifest


@dataclass(frozen=True)
class RuntimeForm:
    """The form chosen for one further runtime of ``Int8Options.runtimes`` (the first is the ``Int8Result``'s).

    Attributes:
        path: its own file, or ``None`` when it chose what the int8 file already is (or kept fp32).
    """

    runtime: str
    shipped: str  # "int8", "stem:K", "mixed" or "fp32"
    kept: str
    decision: str
    speed: SpeedGate | None
    path: Path | None
    agreement: Agreement | None

    def to_dict(self) -> dict:
        return {
            "candidate": self.shipped,
            "kept": self.kept,
            "file": self.path.name if self.path else None,
            "decision": self.decision,
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "speed_gate": self.speed.to_dict() if self.speed else None,
        }


def runtime_file(dst: Path, runtime: str) -> Path:
    """``NAME.int8.onnx`` → ``NAME.int8.RUNTIME.onnx``: the int8 file made for ``runtime``."""
    return dst.with_name(f"{dst.name.removesuffix('.onnx')}.{runtime}.onnx")


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
    runtimes: tuple = ()  # RuntimeForm of each further runtime the file was chosen for

    @property
    def files(self) -> tuple:
        """``(runtime, path)`` of each file written: the int8 file (if any), then each further runtime's own."""
        gate = self.speed.runtime if self.speed else "cpu"
        first = ((gate, self.path),) if self.path else ()
        return first + tuple((r.runtime, r.path) for r in self.runtimes if r.path)

    def to_dict(self) -> dict:
        return {
            "runtimes": {r.runtime: r.to_dict() for r in self.runtimes},
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


def build_int8(request: Int8Request, options: Int8Options | None = None) -> Int8Result:
    """Quantize ``request.fp32_path`` to int8 at ``request.dst``: calibrate, check agreement, fall back, gate on
    speed, choose.

    Args:
        request: the fp32 file, the destination, the calibration images and the model's facts.
        options: how (policy, calibration method, weight bits, speed gate); default ``Int8Options()``.
            ``static`` ships int8 (mixed if the fallback needed it) and warns when it is not faster; ``auto``
            keeps the fastest of fp32, int8 and mixed that meets the target (fp32: ``path`` is None).
    """
    options = options or Int8Options()
    target = target_names(request.target or DEFAULT_TARGETS.get(request.task, DEFAULT_TARGETS["classification"]))
    work = Path(tempfile.mkdtemp(prefix=".int8-", dir=request.dst.parent))
    try:
        ws = open_workspace(request, options, work)
        cal = calibrate_methods(ws)
        sens = measure_sensitivity(ws, cal)
        forms = float_forms(ws, cal, sens, target)
        gate = time_forms(ws, forms, target, options.runtimes[0])
        choice = choose(ws, forms, gate, target, cal.agreement)
        others = tuple(_for_runtime(ws, forms, target, cal, r, choice) for r in options.runtimes[1:])
        result = _result(ws, cal, sens, forms, gate, choice, target, others)
        for other in (o for o in others if o.path):  # stamped with its own form (_ship copies: a form may serve two)
            _ship(
                forms.candidates[other.shipped][0], replace(request, dst=other.path), replace(result, kept=other.kept)
            )
        if choice.kept != "fp32":
            _ship(forms.candidates[choice.name][0], request, result)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _for_runtime(ws: Workspace, forms: Forms, target: dict, cal: Calibration, runtime: str, first: Choice):
    """The speed gate and the policy's choice on a further runtime; its warnings say which runtime they are of."""
    said = len(ws.warnings)
    gate = time_forms(ws, forms, target, runtime)
    choice = choose(ws, forms, gate, target, cal.agreement)
    ws.warnings[said:] = [f"for {runtime}: {w}" for w in ws.warnings[said:]]
    own = choice.kept != "fp32" and choice.name != first.name
    path = runtime_file(ws.request.dst, runtime) if own else None
    return RuntimeForm(runtime, choice.name, choice.kept, choice.decision, gate, path, choice.agreement)


def _ship(candidate: Path, request: Int8Request, result: Int8Result) -> None:
    """Write the chosen candidate to ``request.dst``, stamped by the caller on the way when it asks."""
    if request.stamp is None:
        shutil.copyfile(candidate, request.dst)  # a copy: another runtime's file may be the same form
        return
    import onnx

    model = onnx.load(str(candidate))
    request.stamp(model, result)
    onnx.save(model, str(request.dst))


def _result(
    ws: Workspace,
    cal: Calibration,
    sens: tuple,
    forms: Forms,
    gate: SpeedGate | None,
    choice: Choice,
    target: dict,
    others: tuple = (),
) -> Int8Result:
    form = {
        "hardswish_decomposed": ws.rewrites["HardSwish"],
        "hardsigmoid_decomposed": ws.rewrites["HardSigmoid"],
        "scales_folded": cal.report.scales_folded,
        "biases_corrected": cal.report.biases_corrected,
        "weight_bits": ws.options.weight_bits,
    }
    return Int8Result(
        path=ws.request.dst if choice.kept != "fp32" else None,
        kept=choice.kept,
        policy=ws.options.policy,
        method=cal.method,
        target=target,
        judged=ws.request.judge_accuracy,
        agreement=choice.agreement,
        calibration=cal.scored,
        calibration_images=len(ws.calib),
        selection_images=len(ws.select),
        form=form,
        sensitivity=sens,
        fallback_nodes=tuple(forms.floats.get(choice.name, ())) if choice.kept == "mixed" else (),
        fallback_rounds=forms.rounds,
        speed=gate,
        decision=choice.decision,
        warnings=tuple(ws.warnings),
        notes=tuple(ws.notes),
        shipped=choice.name,
        runtimes=others,
    )
