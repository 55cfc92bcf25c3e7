"""The mobile report as readable text."""

from __future__ import annotations

from ...core.text import text_table


def render_report(report: dict) -> str:
    """The report as a readable text table."""
    lines = [
        f"mobile artifacts for {report['model']} (input {report['input']['name']} "
        f"{'x'.join(map(str, report['input']['shape']))} {report['input']['dtype']})",
        "",
    ]
    lines.append(
        text_table(
            ["artifact", "size", "max abs err", "parity"],
            [
                [a["file"], f"{a['size_bytes'] / 1e6:.2f} MB", f"{a['parity']['max_abs']:.1e}", _verdict(a["parity"])]
                for a in report["artifacts"]
            ],
        )
    )
    lines += [
        "",
        f"parity: {report['parity_inputs']['count']} inputs ({report['parity_inputs']['source']}) "
        f"against {report['parity_inputs']['reference']}",
    ]
    if report["required_operators"]:
        lines.append("required operators (minimal builds): " + ", ".join(report["required_operators"]))
    done = {k: v for k, v in report["rewrites"].items() if v}
    lines.append("portable rewrites: " + (", ".join(f"{k} ×{v}" for k, v in done.items()) or "none needed"))
    for title, key in (("fixed-shape graph", "fixed"), ("source graph, as exported", "source")):
        lines += ["", f"partitions, {title}:"]
        rows = []
        for p in report["partitions"][key]:
            by_reason: dict = {}
            for f in p["fallbacks"]:
                by_reason.setdefault(f["reason"], []).append(f"{f['op']} ×{f['count']}")
            falls = "; ".join(f"{why}: {', '.join(ops)}" for why, ops in by_reason.items()) or "-"
            rows.append(
                [
                    p["provider"],
                    f"{p['supported_nodes']}/{p['nodes']} ({p['coverage']:.0%})",
                    str(p["partitions"]),
                    p["suitability"],
                    falls,
                ]
            )
        lines.append(text_table(["provider", "nodes taken", "partitions", "worth it", "left to CPU (why)"], rows))
    caveats = [(p["provider"], c) for p in report["partitions"]["fixed"] for c in p["caveats"]]
    if caveats:
        lines += ["", "operator conditions the estimate does not check (it assumes they hold):"]
        lines += [f"  {provider}: {c.removeprefix('ai.onnx:')}" for provider, c in caveats]
    for w in report["warnings"]:
        lines.append(f"note: {w}")
    return "\n".join(lines)


def _verdict(parity: dict) -> str:
    if not parity.get("judged", True):
        return "n/a"
    return "pass" if parity["passed"] else "FAIL"
