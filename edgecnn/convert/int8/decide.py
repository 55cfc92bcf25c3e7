"""The last steps of ``build_int8``: the speed gate over the forms, and which form ships (and why, in words)."""

from __future__ import annotations

from dataclasses import dataclass

from .agreement import Agreement
from .request import Workspace
from .speed import SpeedGate, speed_gate
from .steps import Forms, fmt_target


def time_forms(ws: Workspace, forms: Forms, target: dict, runtime: str = "cpu") -> SpeedGate | None:
    """The speed gate over the candidates (auto policy: those that keep accuracy) on ``runtime``; None when it is
    off."""
    if not ws.options.speed:
        return None
    ws.say("speed gate" if runtime == "cpu" else f"speed gate on {runtime}")
    accurate = accurate_forms(ws, forms, target)
    timed = accurate if ws.options.policy == "auto" and accurate else forms.candidates
    return speed_gate(
        ws.request.fp32_path,
        {n: p for n, (p, _) in timed.items()},
        input_size=ws.request.input_size,
        batch=ws.request.batch,
        threads=ws.options.threads,
        seconds=ws.options.speed_seconds,
        runtime=runtime,
    )


def accurate_forms(ws: Workspace, forms: Forms, target: dict) -> dict:
    """The candidates that meet the target (all of them for random weights, which are not judged)."""
    judged = ws.request.judge_accuracy
    return {n: c for n, c in forms.candidates.items() if not judged or c[1].meets(target)}


@dataclass(frozen=True)
class Choice:
    """The form shipped: its name ("int8", "stem:K", "mixed" or "fp32"), what it is, why, and its agreement."""

    name: str
    kept: str  # "int8", "mixed" (a float stem is a mixed form too) or "fp32"
    decision: str
    agreement: Agreement  # of the shipped form (or of the most accurate candidate when fp32 was kept)


def choose(ws: Workspace, forms: Forms, gate: SpeedGate | None, target: dict, best: Agreement) -> Choice:
    """Which form ships under the options' policy; warnings added to the workspace where it is not the plain win."""
    accurate = accurate_forms(ws, forms, target)
    policy = ws.options.policy
    name, decision = decide(policy, forms.candidates, accurate, gate, ws.request.judge_accuracy, target)
    kept = name if name in ("int8", "fp32") else "mixed"
    if kept == "fp32":  # no int8 artifact ships: say so where the export's notes are shown
        ws.warnings.append(f"no int8 artifact written: {decision}")
        shipped = max((c[1] for c in accurate.values()), key=Agreement.score, default=best)
    else:
        shipped = forms.candidates[name][1]
    if gate is not None and kept != "fp32" and gate.ratios.get(name, 0) >= 1.0:
        ws.warnings.append(not_faster(gate, name, ws.options.threads, policy))
    return Choice(name, kept, decision, shipped)


def not_faster(gate: SpeedGate, name: str, threads: int, policy: str) -> str:
    return (
        f"int8 is not faster than fp32 here ({gate.candidates_ms[name]:.3f} ms vs {gate.fp32_ms:.3f} ms, "
        f"{threads} threads, batch {gate.batch}): "
        + "; ".join(gate.causes)
        + (". Use --int8 auto to keep the faster form" if policy == "static" else "")
    )


def decide(
    policy: str, candidates: dict, accurate: dict, gate: SpeedGate | None, judged: bool, target: dict
) -> tuple[str, str]:
    """Which form to ship, and the reason in words."""
    ms = (lambda n: gate.candidates_ms.get(n)) if gate else (lambda n: None)

    def timing(n: str) -> str:
        return f" ({ms(n):.3f} ms vs fp32 {gate.fp32_ms:.3f} ms)" if gate and ms(n) is not None else ""

    if policy == "static":
        return decide_static(candidates, accurate, gate, target, timing)
    if not accurate:
        return "fp32", f"auto policy: kept fp32, no int8 form met the agreement target {fmt_target(target)}"
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


def decide_static(candidates: dict, accurate: dict, gate: SpeedGate | None, target: dict, timing) -> tuple[str, str]:
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
        why += f", the most accurate form that meets {fmt_target(target)}"
    elif not kept:
        why += f"; no form met {fmt_target(target)}, this one agrees best"
    return name, why + timing(name)
