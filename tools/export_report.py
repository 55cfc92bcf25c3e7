#!/usr/bin/env python3
"""Export every model (or some) and print, for each: time of each step, artifact sizes, parity figures.

    python tools/export_report.py                       # the whole zoo, fp32 + fp16 + int8, into exported/
    python tools/export_report.py --models resnet18,unet --input-size 64 --out /tmp/exports
    python tools/export_report.py --reuse               # print from the manifests already in --out

Uses the public API only. The full zoo at full size writes ~6 GB (VGG's fp32 files are ~550 MB each) and
takes a long while on 2 cores; --input-size shrinks the work (architectures are unchanged).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import edgecnn
from edgecnn.pipeline import read_manifest

STEPS = [
    "build model",
    "load images",
    "re-estimate batchnorm",
    "pytorch reference",
    "export onnx",
    "simplify",
    "check fp32",
    "convert fp16",
    "check fp16",
    "quantize int8",
    "check int8",
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="comma-separated names, or 'all'")
    ap.add_argument("--out", default="exported", type=Path, help="parent folder of the exports")
    ap.add_argument("--input-size", default=None, help="override every model's input size (U-Net: multiple of 16)")
    ap.add_argument("--no-fp16", action="store_true")
    ap.add_argument("--no-int8", action="store_true")
    ap.add_argument("--calib-count", type=int, default=None)
    ap.add_argument("--reuse", action="store_true", help="read existing manifests instead of exporting")
    ap.add_argument("--json", type=Path, help="also write the collected manifests here")
    args = ap.parse_args(argv)

    names = (
        edgecnn.list_models() if args.models == "all" else [edgecnn.get_spec(n).name for n in args.models.split(",")]
    )
    manifests = []
    for name in names:
        out = args.out / name
        if args.reuse:
            manifests.append(read_manifest(out))
            continue
        t0 = time.perf_counter()
        print(f"exporting {name} ...", file=sys.stderr, flush=True)
        try:
            result = edgecnn.export(
                name,
                out,
                input_size=args.input_size,
                fp16=not args.no_fp16,
                int8=not args.no_int8,
                calib_count=args.calib_count,
                force=True,
                command="tools/export_report.py",
            )
        except edgecnn.EdgeCNNError as exc:
            print(f"  {name}: {exc}", file=sys.stderr)
            continue
        print(f"  done in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
        manifests.append(result.manifest)

    print(render(manifests))
    if args.json:
        args.json.write_text(json.dumps(manifests, indent=2))
    failed = [
        m["model"]
        for m in manifests
        if any(a["parity"].get("judged", True) and not a["parity"]["passed"] for a in m["artifacts"])
    ]
    if failed:
        print(f"parity failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def render(manifests: list[dict]) -> str:
    lines = ["Step times (s)", _row(["model"] + STEPS + ["total"])]
    for m in manifests:
        t = m["timings_s"]
        lines.append(
            _row([m["model"]] + [f"{t[s]:.1f}" if s in t else "-" for s in STEPS] + [f"{sum(t.values()):.1f}"])
        )
    lines += [
        "",
        "Artifacts",
        _row(["model", "precision", "size MB", "max abs", "max rel", "cosine", "top1 / mIoU", "top5", "parity"]),
    ]
    for m in manifests:
        for a in m["artifacts"]:
            p = a["parity"]
            agree = p["top1_agreement"] if p.get("top1_agreement") is not None else p.get("mean_iou")
            verdict = ("pass" if p["passed"] else "FAIL") if p.get("judged", True) else "n/a (random weights)"
            lines.append(
                _row(
                    [
                        m["model"],
                        a["precision"],
                        f"{a['size_bytes'] / 1e6:.1f}",
                        f"{p['max_abs']:.2e}",
                        f"{p['max_rel']:.2e}",
                        f"{p['cosine']:.5f}",
                        f"{agree:.3f}",
                        f"{p['top5_agreement']:.3f}" if p.get("top5_agreement") is not None else "-",
                        verdict,
                    ]
                )
            )
    return "\n".join(lines)


def _row(cells: list) -> str:
    return " | ".join(str(c) for c in cells)


if __name__ == "__main__":
    sys.exit(main())
