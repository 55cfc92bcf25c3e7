"""`edgecnn eval` on the digits fixtures' held-out split, written as an ImageFolder: fp32 vs int8 with intervals.

    python tools/eval_report.py [--models resnet18,mobilenet_v2,mobilenet_v3_large] [--write docs/INT8.md]

Each fixture (tools/train_fixtures.py: a small zoo model briefly trained on scikit-learn's digits) is exported
through the pipeline with --int8, calibrated on its calibration split; its 441 held-out digits are saved as
PNGs in one folder per class; then ``edgecnn.runtime.evaluate`` scores fp32 and int8 side by side: top-1, and the
int8 − fp32 difference with its paired-bootstrap 95% interval. The table goes between the eval_report markers.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import train_fixtures  # noqa: E402
from doc_section import write_section  # noqa: E402

START, END = "<!-- eval_report:start -->", "<!-- eval_report:end -->"


def image_folder(name: str, root: Path) -> Path:
    """The fixture's held-out images (its own split, before preprocessing) as ROOT/<class>/<i>.png."""
    _, _, (images, labels), _ = train_fixtures._splits(train_fixtures.FIXTURES[name])
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / f"{i:04d}.png")
    return root


def measure(name: str, work: Path) -> dict:
    from edgecnn import pipeline
    from edgecnn.runtime.evaluate import evaluate

    fx = train_fixtures.trained_fixture(name)
    result = pipeline.export(
        name,
        work / name,
        weights=str(fx.checkpoint),
        num_classes=fx.num_classes,
        input_size=fx.input_size,
        int8=True,
        calib=fx.calib_dir,
        arch_options=fx.arch_options,
        force=True,
    )
    data = image_folder(name, work / f"{name}-heldout")
    return evaluate([result.path("fp32"), result.path("int8")], data, labels_from="folder").to_dict()


def render(rows: dict) -> str:
    lines = [
        START,
        f"`edgecnn eval` on each digits fixture's held-out split as an ImageFolder (measured "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `tools/eval_report.py`); "
        "Δ = int8 − fp32 top-1 with its paired-bootstrap 95% interval.",
        "",
        "| model | images | fp32 top-1 | int8 top-1 | Δ (pp) | 95% interval (pp) | within 1 point |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        fp32, int8 = r["models"]
        c = r["comparisons"][0]
        inside = "yes" if c["low"] >= -0.01 else ("no" if c["high"] < -0.01 else "undecided")
        lines.append(
            f"| {name} | {r['n_images']} | {100 * fp32['top1']:.2f}% | {100 * int8['top1']:.2f}% | "
            f"{100 * c['difference']:+.2f} | [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}] | {inside} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2,mobilenet_v3_large")
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="eval-report-") as tmp:
        rows = {name: measure(name, Path(tmp)) for name in args.models.split(",")}
    text = render(rows)
    print(text)
    if args.write:
        write_section(args.write, text, START, END, "## Accuracy with `edgecnn eval`")


if __name__ == "__main__":
    main()
