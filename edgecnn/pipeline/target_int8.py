"""The int8 ``.tflite`` and ``.pte`` chosen on the runtime each is for: every form made, checked against PyTorch on
that runtime and timed there beside the fp32 file of its format, then the int8 policy's choice shipped.

The ONNX int8's speed gate times its forms on onnxruntime (or OpenVINO, ``--int8-for``). A ``.tflite`` runs on
LiteRT and a ``.pte`` on ExecuTorch, whose kernels differ from onnxruntime's and from each other's: XNNPACK's int8
3-channel stem and early depthwise layers are slower than their fp32, and an operator the delegate does not take
(LiteRT's int8 HARD_SWISH, before ``pt2e_passes.split_hardswish``) splits the graph. So these files are timed where
they run::

    forms (convert.targets.pt2e.candidate_recipes): "int8" (the plain recipe), "float-adds" (LiteRT: its adds as
    litert-torch leaves them), "stem" (trained EfficientNet-Lite, MobileNetV2/V3)
      → each exported, reopened on its runtime and judged against PyTorch (as every file is)
      → the format's fp32 file and each form timed interleaved on that runtime (bench.benchmark_many)
      → static policy: the fastest plain form (no float layer kept for accuracy) that meets int8's parity, else the
        most accurate form that does, among those faster than fp32 when any is; auto: the fastest form that meets
        it, or no int8 file when fp32 is faster (as ``convert.int8.decide`` chooses for ONNX)

The record (the artifact's ``runtime.int8``) keeps every form's verdict, the timings and the decision in words.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

from ..core.artifact import Artifact
from ..core.card import ModelCard
from .images import ExportImages
from .steps import Built, Job

#: the formats whose int8 is made through PT2E and gated on their own runtime
GATED = ("tflite", "pte")
_RUNTIMES = {"tflite": "LiteRT", "pte": "ExecuTorch"}


def export_int8_target(job: Job, built: Built, card: ModelCard, images: ExportImages, ref, fmt: str):
    """The int8 file of ``fmt``, chosen on its runtime; ``None`` when the auto policy keeps fp32 (said)."""
    from ..convert.targets import SUFFIXES
    from ..convert.targets.pt2e import candidate_recipes
    from .targets import make_target

    options, run, suffix = job.options, job.run, SUFFIXES[fmt]
    recipes = candidate_recipes(built.model, options.weights is not None, "litert" if fmt == "tflite" else "xnnpack")
    forms = job.staging / f".int8-{fmt}-forms"
    forms.mkdir(exist_ok=True)
    try:
        made, said = {}, {}
        for name, recipe in recipes.items():
            before = len(run.warnings)  # a form not shipped says nothing: its verdict is in the record
            made[name] = make_target(job, built, card, images, ref, fmt, "int8", forms / f"{name}{suffix}", recipe)
            said[name] = run.warnings[before:]
            del run.warnings[before:]
        fp32 = job.staging / f"{job.spec.name}.fp32{suffix}"
        gate = time_forms(job, fp32, {n: forms / f"{n}{suffix}" for n in made}, fmt) if fp32.is_file() else None
        name, decision = choose_form(made, gate, options.int8.policy, judged=options.weights is not None)
        record = {"forms": {n: _verdict(a) for n, a in made.items()}, "speed_gate": gate, "candidate": name}
        record["decision"] = decision
        if name == "fp32":
            run.warnings.append(f"no int8 .{fmt} written: {decision}")
            return None
        final = job.staging / f"{job.spec.name}.int8{suffix}"
        shutil.move(str(forms / f"{name}{suffix}"), str(final))
        chosen = made[name]
        runtime = {**chosen.runtime, "int8": {**chosen.runtime.get("int8", {}), "gate": record}}
        chosen = replace(chosen, file=final.name, runtime=runtime, notes=(*chosen.notes, decision))
        run.warnings.extend(w.replace(f"{name}{suffix}", final.name) for w in said[name])
        if gate and gate["candidates_ms"][name] >= gate["fp32_ms"]:
            run.warnings.append(not_faster(chosen, gate, name, job.options.int8.policy))
        return chosen
    finally:
        shutil.rmtree(forms, ignore_errors=True)


def time_forms(job: Job, fp32, forms: dict, fmt: str) -> dict | None:
    """The format's fp32 file and each form timed interleaved on their runtime by the ONNX int8's own speed gate
    (``convert.int8.speed``), as a record naming that runtime (``None``: speed gate off)."""
    from ..convert.int8.speed import speed_gate

    q = job.options.int8
    if not q.speed:
        return None
    with job.run.step(f"speed gate {fmt} int8"):
        gate = speed_gate(fp32, forms, threads=q.threads, seconds=q.speed_seconds, warmup=3)
    return {**gate.to_dict(), "runtime": _RUNTIMES[fmt]}


def choose_form(made: dict, gate: dict | None, policy: str, judged: bool) -> tuple[str, str]:
    """The form to ship (``"fp32"``: none), and why, in words (see the module docstring)."""
    ms = (gate or {}).get("candidates_ms", {})
    fp32_ms = (gate or {}).get("fp32_ms")
    meets = [n for n, a in made.items() if not judged or a.parity.passed]
    timing = (lambda n: f" ({ms[n]:.3f} ms vs fp32 {fp32_ms:.3f} ms on {gate['runtime']})") if gate else (lambda n: "")
    if policy == "auto":
        if not meets:
            return "fp32", "auto policy: kept fp32, no int8 form passed parity"
        name = min(meets, key=lambda n: ms.get(n, 0.0))
        if gate and ms[name] >= fp32_ms:
            return "fp32", f"auto policy: kept fp32, it is the fastest{timing(name).replace(' (', ' (int8 ')}"
        return name, f"auto policy: {_what(name)} is the fastest form that passes parity{timing(name)}"
    from ..convert.targets.pt2e import PLAIN_FORMS

    fast = [n for n in made if not gate or ms[n] < fp32_ms] or list(made)
    kept = [n for n in fast if n in meets]
    plain = [n for n in kept if n in PLAIN_FORMS]
    if plain:
        name = min(plain, key=lambda n: ms.get(n, 0.0))
        return name, f"static policy: {_what(name)}{', the fastest plain form' if len(plain) > 1 else ''}{timing(name)}"
    name = max(kept or fast, key=lambda n: _agreement(made[n]))
    why = "the most accurate form that passes parity" if kept else "no form passed parity, this one agrees best"
    return name, f"static policy: {_what(name)}, {why}{timing(name)}"


def not_faster(artifact: Artifact, gate: dict, name: str, policy: str) -> str:
    """The warning when the shipped form is no faster than fp32 on its runtime, with what ran outside the
    delegate (the usual cause: float operators between int8 pieces)."""
    outside = (artifact.runtime.get("delegation") or {}).get("other_ops") or {}
    cause = ", ".join(f"{op}×{n}" for op, n in outside.items())
    return (
        f"{artifact.file}: int8 is not faster than fp32 on {gate['runtime']} "
        f"({gate['candidates_ms'][name]:.3f} ms vs {gate['fp32_ms']:.3f} ms)"
        + (f"; outside XNNPACK: {cause}" if cause else "")
        + (". Use --int8 auto to keep fp32 where it is faster" if policy == "static" else "")
    )


def _what(name: str) -> str:
    return {"stem": "int8 with its float stem", "float-adds": "int8 with its adds in float"}.get(name, "int8")


def _agreement(artifact: Artifact) -> float:
    p = artifact.parity
    value = p.pixel_agreement if p.task == "segmentation" else p.top1_agreement
    return value if value is not None else -1.0


def _verdict(artifact: Artifact) -> dict:
    p = artifact.parity
    return {
        "passed": bool(p.passed),
        "judged": bool(p.judged),
        "agreement": _agreement(artifact),
        "recipe": (artifact.runtime.get("int8") or {}).get("recipe"),
    }
