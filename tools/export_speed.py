"""The main job's wall time: ``edgecnn export NAME --int8`` against the plain path, side by side, in one run.

    python tools/export_speed.py [--models mobilenet_v2,resnet50] [--repeats 3] [--no-doc]

Per model, ``--repeats`` rounds, each running both in fresh processes (their order swapped every round, a 2 s
pause between runs): ours is the CLI with its defaults (parity, BatchNorm re-estimation on random weights, the
int8 agreement check, the speed gate, the manifest); the plain path is tools/peer_bench.py's five lines
(``torch.onnx.export`` + ``onnxsim`` + ``quantize_static`` on the same 64 calibration photos). Reported: the
median wall time of each, their ratio (target ≤ 1.5), and the median of each step of ours from the manifest, so
it shows where the time goes. The table goes into docs/BENCHMARKS.md between the export_speed markers.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import peer_bench  # noqa: E402  (the plain path and our CLI run, shared with the peer benchmark)
from doc_section import write_section  # noqa: E402

START, END = "<!-- export_speed:start -->", "<!-- export_speed:end -->"
TARGET = 1.5


def measure(name: str, repeats: int, work: Path) -> dict:
    ours, plain, steps = [], [], []
    calib = None
    for r in range(repeats):
        for side in ("ours", "plain") if r % 2 == 0 else ("plain", "ours"):
            if side == "ours":
                run = peer_bench.export_ours(name, work / name / "ours")
                ours.append(run["wall_s"])
                steps.append(run["timings_s"])
                if calib is None:
                    calib = peer_bench.calibration_images(run["fp32"])
            else:
                if calib is None:  # the plain path calibrates on the photos ours uses: make them first
                    continue
                plain.append(peer_bench.export_plain(name, work / name / "plain", calib)["wall_s"])
            time.sleep(2)
    if len(plain) < repeats:  # the first round's plain run waited for the calibration images
        plain.append(peer_bench.export_plain(name, work / name / "plain", calib)["wall_s"])
    step_medians = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
    return {
        "ours": statistics.median(ours),
        "plain": statistics.median(plain),
        "steps": step_medians,
        "runs": (ours, plain),
    }


def render(rows: dict, repeats: int) -> str:
    import onnxruntime
    import torch

    import edgecnn
    from edgecnn.convert.int8.speed import vnni_label
    from edgecnn.runtime.bench import machine_info

    m = machine_info()
    lines = [
        START,
        "## The main job's wall time",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`tools/export_speed.py` on {m.cpu_model} ({vnni_label()}), {m.logical_cores} threads "
        f"(edgecnn {edgecnn.__version__}, torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}): median of {repeats} runs each, fresh processes, interleaved; target ours ≤ "
        f"{TARGET}× the plain path.",
        "",
        "| model | `edgecnn export --int8` s | plain path s | ratio | verdict | where ours goes (median s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        ratio = m["ours"] / m["plain"]
        steps = ", ".join(f"{k} {v:.1f}" for k, v in sorted(m["steps"].items(), key=lambda kv: -kv[1]) if v >= 0.3)
        lines.append(
            f"| {name} | {m['ours']:.1f} | {m['plain']:.1f} | {ratio:.2f} | "
            f"{'meets' if ratio <= TARGET else 'MISSES'} | {steps} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet50")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="export-speed-") as tmp:
        rows = {name: measure(name, args.repeats, Path(tmp)) for name in args.models.split(",")}
    text = render(rows, args.repeats)
    print(text)
    if not args.no_doc:
        write_section(ROOT / "docs" / "BENCHMARKS.md", text, START, END)


if __name__ == "__main__":
    main()
