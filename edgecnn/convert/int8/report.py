"""The manifest's int8 record as text (``edgecnn int8-report``, and the export's summary).

The record is read with ``edgecnn.core.documents.int8_record``, which checks the keys and types used here.
Agreement figures are read under ``runtime.compare``'s names (``top1_agreement``, ``pixel_agreement``,
``mean_iou``) or, in records written before the int8 step took them, the old ones (``top1``, ``pixel``, ``miou``).
"""

from __future__ import annotations

_OLD = {"top1_agreement": "top1", "pixel_agreement": "pixel", "mean_iou": "miou"}


def _figure(agreement: dict, name: str):
    """An agreement figure by its current name, or by the name older records used; None when absent."""
    value = agreement.get(name)
    return agreement.get(_OLD[name]) if value is None else value


def _task_core(a: dict, *, pixel: bool = True) -> str:
    top1 = _figure(a, "top1_agreement")
    if top1 is not None:
        return f"top-1 {top1:.3f}"
    miou = f"mIoU {_figure(a, 'mean_iou') or 0:.4f}"
    return f"pixel {_figure(a, 'pixel_agreement') or 0:.4f} {miou}" if pixel else miou


def render_report(record: dict, top: int = 10) -> str:
    """The manifest's ``int8`` record as text: decision, calibration, agreement, sensitivity, fallback, speed."""
    lines = [f"int8: kept {record['kept']} — {record['decision']}"]
    if record.get("candidate", record["kept"]) != record["kept"]:
        lines.append(f"candidate shipped: {record['candidate']}")
    lines += _agreement_lines(record)
    lines += _form_lines(record.get("form") or {})
    lines += _sensitivity_lines(record, top)
    fb = record.get("fallback") or {}
    for r in fb.get("rounds") or []:
        a = r["agreement"]
        lines.append(f"fallback: {r['nodes']} layer(s) in float → {_task_core(a, pixel=False)}, {a['sqnr_db']:.1f} dB")
    if fb.get("nodes"):
        lines.append("float layers shipped: " + ", ".join(fb["nodes"]))
    lines += _speed_lines(record.get("speed_gate"))
    lines += [f"warning: {w}" for w in record.get("warnings") or []]
    lines += [f"note: {n}" for n in record.get("notes") or []]
    return "\n".join(lines)


def _agreement_lines(record: dict) -> list[str]:
    lines = []
    ag = record.get("agreement") or {}
    target = ", ".join(f"{k} ≥ {v}" for k, v in (record.get("target") or {}).items())
    judged = "" if record.get("judged", True) else " (random weights: not judged)"
    if ag:
        lines.append(
            f"agreement with fp32: {_task_core(ag)}, SQNR {ag['sqnr_db']:.1f} dB on {ag['samples']} held-out "
            f"calibration images; target {target}{judged}"
        )
    cands = record.get("calibration_candidates") or {}
    if len(cands) > 1:
        parts = [f"{m} {_task_core(a, pixel=False)} KL {a.get('kl', 0):.5f}" for m, a in cands.items()]
        lines.append("calibration (auto): " + "; ".join(parts) + f" → {record['calibration_method']}")
    else:
        lines.append(f"calibration: {record['calibration_method']} on {record['calibration_images']} images")
    return lines


def _form_lines(form: dict) -> list[str]:
    lines = []
    if form.get("hardswish_decomposed") or form.get("hardsigmoid_decomposed"):
        lines.append(
            f"int8 form: {form.get('hardswish_decomposed', 0)} HardSwish and "
            f"{form.get('hardsigmoid_decomposed', 0)} "
            f"HardSigmoid rewritten as int8 Add/Mul, {form.get('scales_folded', 0)} scales folded"
        )
    if form.get("biases_corrected"):
        lines.append(
            f"bias correction: {form['biases_corrected']} int8 layers' biases corrected for the mean shift "
            "of their weight rounding"
        )
    return lines


def _sensitivity_lines(record: dict, top: int) -> list[str]:
    sens = (record.get("sensitivity") or {}).get("most_sensitive") or []
    if not sens:
        return []
    lines = [f"most sensitive layers (of {record['sensitivity']['layers']}; dB of SQNR lost at the layer):"]
    width = max(len(s["node"]) for s in sens[:top])
    lines.append(f"  {'node'.ljust(width)}  {'op':<16} {'out SQNR':>8} {'lost':>6} {'weights':>8}")
    for s in sens[:top]:
        w = "-" if s.get("weight_sqnr_db") is None else f"{s['weight_sqnr_db']:.1f}"
        lines.append(f"  {s['node'].ljust(width)}  {s['op_type']:<16} {s['sqnr_db']:8.1f} {s['loss_db']:6.1f} {w:>8}")
    return lines


def _speed_lines(gate: dict | None) -> list[str]:
    if not gate:
        return []
    ratio = {
        n: gate["ratios"].get(n, ms / gate["fp32_ms"] if gate["fp32_ms"] else float("nan"))
        for n, ms in gate["candidates_ms"].items()
    }
    times = ", ".join(f"{n} {ms:.3f} ms ({ratio[n]:.2f}×)" for n, ms in gate["candidates_ms"].items())
    lines = [
        f"speed gate: fp32 {gate['fp32_ms']:.3f} ms, {times} [{gate['threads']} threads, batch "
        f"{gate['batch']}; VNNI {'yes' if gate['vnni'] else 'no' if gate['vnni'] is False else '?'}]"
    ]
    for name, rt in (gate.get("round_trips") or {}).items():
        if rt.get("count"):
            lines.append(
                f"  {name}: {rt['count']} Q/DQ round trips left around "
                + ", ".join(f"{op}×{n}" for op, n in rt["ops"].items())
            )
    lines += [f"  likely cause: {cause}" for cause in gate.get("causes") or []]
    return lines
