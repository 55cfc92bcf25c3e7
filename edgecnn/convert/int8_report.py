"""The manifest's int8 record as text (``edgecnn int8-report``, and the export's summary).

The record is read with ``edgecnn.core.documents.int8_record``, which checks the keys and types used here.
"""

from __future__ import annotations


def render_report(record: dict, top: int = 10) -> str:
    """The manifest's ``int8`` record as text: decision, calibration, agreement, sensitivity, fallback, speed."""
    lines = [f"int8: kept {record['kept']} — {record['decision']}"]
    if record.get("candidate", record["kept"]) != record["kept"]:
        lines.append(f"candidate shipped: {record['candidate']}")
    ag = record.get("agreement") or {}
    target = ", ".join(f"{k} ≥ {v}" for k, v in (record.get("target") or {}).items())
    judged = "" if record.get("judged", True) else " (random weights: not judged)"
    if ag:
        core = (
            f"top-1 {ag['top1']:.3f}"
            if "top1" in ag
            else f"pixel {ag.get('pixel', 0):.4f} mIoU {ag.get('miou', 0):.4f}"
        )
        lines.append(
            f"agreement with fp32: {core}, SQNR {ag['sqnr_db']:.1f} dB on {ag['samples']} held-out "
            f"calibration images; target {target}{judged}"
        )
    cands = record.get("calibration_candidates") or {}
    if len(cands) > 1:
        parts = [
            (f"{m} top-1 {a['top1']:.3f}" if "top1" in a else f"{m} mIoU {a.get('miou', 0):.4f}")
            + f" KL {a.get('kl', 0):.5f}"
            for m, a in cands.items()
        ]
        lines.append("calibration (auto): " + "; ".join(parts) + f" → {record['calibration_method']}")
    else:
        lines.append(f"calibration: {record['calibration_method']} on {record['calibration_images']} images")
    form = record.get("form") or {}
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
    sens = (record.get("sensitivity") or {}).get("most_sensitive") or []
    if sens:
        lines.append(f"most sensitive layers (of {record['sensitivity']['layers']}; dB of SQNR lost at the layer):")
        width = max(len(s["node"]) for s in sens[:top])
        lines.append(f"  {'node'.ljust(width)}  {'op':<16} {'out SQNR':>8} {'lost':>6} {'weights':>8}")
        for s in sens[:top]:
            w = "-" if s.get("weight_sqnr_db") is None else f"{s['weight_sqnr_db']:.1f}"
            lines.append(
                f"  {s['node'].ljust(width)}  {s['op_type']:<16} {s['sqnr_db']:8.1f} {s['loss_db']:6.1f} {w:>8}"
            )
    fb = record.get("fallback") or {}
    for r in fb.get("rounds") or []:
        a = r["agreement"]
        core = f"top-1 {a['top1']:.3f}" if "top1" in a else f"mIoU {a.get('miou', 0):.4f}"
        lines.append(f"fallback: {r['nodes']} layer(s) in float → {core}, {a['sqnr_db']:.1f} dB")
    if fb.get("nodes"):
        lines.append("float layers shipped: " + ", ".join(fb["nodes"]))
    gate = record.get("speed_gate")
    if gate:
        ratio = {
            n: gate["ratios"].get(n, ms / gate["fp32_ms"] if gate["fp32_ms"] else float("nan"))
            for n, ms in gate["candidates_ms"].items()
        }
        times = ", ".join(f"{n} {ms:.3f} ms ({ratio[n]:.2f}×)" for n, ms in gate["candidates_ms"].items())
        lines.append(
            f"speed gate: fp32 {gate['fp32_ms']:.3f} ms, {times} [{gate['threads']} threads, batch "
            f"{gate['batch']}; VNNI {'yes' if gate['vnni'] else 'no' if gate['vnni'] is False else '?'}]"
        )
        for name, rt in (gate.get("round_trips") or {}).items():
            if rt.get("count"):
                lines.append(
                    f"  {name}: {rt['count']} Q/DQ round trips left around "
                    + ", ".join(f"{op}×{n}" for op, n in rt["ops"].items())
                )
        for cause in gate.get("causes") or []:
            lines.append(f"  likely cause: {cause}")
    for w in record.get("warnings") or []:
        lines.append(f"warning: {w}")
    for n in record.get("notes") or []:
        lines.append(f"note: {n}")
    return "\n".join(lines)
