"""Images/s of the Ray pipeline (edgecnn.scale.predict_dataset) against a plain Predictor loop, same images, same cores.

    .venv/bin/python tools/bench_ray.py                      # 2,000 images, mobilenet_v2 at 224, all cores
    .venv/bin/python tools/bench_ray.py --images 500 --input-size 96 --repeats 2 --no-docs

Method: N crops (120–400 px, JPEG) of the two sample photographs are written once. The plain loop is what
``edgecnn predict`` does on one process: ``Predictor(intra_op_threads=CPUS).predict`` over batches of paths
(decode, preprocess, infer, in turn). The Ray run is ``predict_dataset`` on a local ``ray.init(num_cpus=CPUS)``
into a fresh Parquet folder, timed end to end (listing, actor start and Parquet writes included; ``ray.init``
itself excluded — a cluster is started once, not per job). Both first run once untimed on 64 images (imports,
Ray's worker processes). Then the repeats are interleaved — plain, Ray, Ray, plain, … with a pause before each
run so one's threads are idle before the other starts — and the median of each is reported. The table is
printed and, unless ``--no-docs``, written into docs/SCALE.md between the bench_ray marker comments.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "SCALE.md"
START, END = "<!-- bench_ray:start -->", "<!-- bench_ray:end -->"


def make_images(folder: Path, count: int) -> Path:
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder.mkdir(parents=True, exist_ok=True)
    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    for i in range(count):
        photo = photos[i % 2]
        size = int(rng.integers(120, 400))
        y, x = int(rng.integers(0, photo.shape[0] - size)), int(rng.integers(0, photo.shape[1] - size))
        Image.fromarray(photo[y : y + size, x : x + size]).save(folder / f"crop{i:05d}.jpg", quality=90)
    return folder


def export_model(size: int, work: Path) -> Path:
    import edgecnn

    result = edgecnn.export("mobilenet_v2", work / f"mobilenet_v2_{size}", input_size=size)
    return result.path("fp32")


def plain_loop(model: Path, paths: list, cpus: int, batch: int) -> float:
    from edgecnn.runtime.predictor import Predictor

    t0 = time.perf_counter()
    predictor = Predictor(model, intra_op_threads=cpus)
    for start in range(0, len(paths), batch):
        predictor.predict(paths[start : start + batch], top_k=5)
    return time.perf_counter() - t0


def ray_run(model: Path, folder: Path, out: Path, batch: int) -> float:
    from edgecnn.scale import predict_dataset

    t0 = time.perf_counter()
    summary = predict_dataset(model, folder, out, batch_size=batch, progress=False)
    seconds = time.perf_counter() - t0
    assert summary.inferred == len(list(folder.iterdir())), summary
    return seconds


def measure(model: Path, folder: Path, cpus: int, repeats: int, batch: int, pause: float, work: Path) -> dict:
    paths = sorted(folder.iterdir())
    warm = work / f"warm_{model.parent.name}"
    warm.mkdir(exist_ok=True)
    for p in paths[:64]:
        (warm / p.name).write_bytes(p.read_bytes())
    plain_loop(model, sorted(warm.iterdir()), cpus, batch)
    ray_run(model, warm, work / f"warm_{model.parent.name}.parquet", batch)
    times: dict = {"plain": [], "ray": []}
    for r in range(repeats):
        for method in ("plain", "ray") if r % 2 == 0 else ("ray", "plain"):
            time.sleep(pause)
            if method == "plain":
                times["plain"].append(plain_loop(model, paths, cpus, batch))
            else:
                times["ray"].append(ray_run(model, folder, work / f"run_{model.parent.name}_{r}.parquet", batch))
            print(f"  repeat {r + 1} {method}: {times[method][-1]:.2f}s", file=sys.stderr)
    return {k: statistics.median(v) for k, v in times.items()} | {"all": times}


def table(rows: list, images: int, cpus: int) -> str:
    lines = [
        "| model | input | images | cores | plain loop images/s | Ray images/s | Ray per core | Ray overhead |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        plain, ray_ = images / r["plain"], images / r["ray"]
        lines.append(
            f"| mobilenet_v2 fp32 | {r['size']} | {images} | {cpus} | {plain:.1f} | {ray_:.1f} | "
            f"{ray_ / cpus:.1f} | {(r['ray'] / r['plain'] - 1) * 100:+.0f}% |"
        )
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_docs(text: str) -> None:
    doc = DOCS.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{DOCS}: the markers {START} … {END} are missing")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    from edgecnn.core.files import write_text_atomic

    write_text_atomic(DOCS, f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--input-size", default="224", help="comma-separated sizes, one row each")
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="both sides (default: predict_dataset's)")
    parser.add_argument("--pause", type=float, default=2.0)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    import ray

    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        work = Path(tmp)
        folder = make_images(work / "images", args.images)
        models = {int(s): export_model(int(s), work) for s in args.input_size.split(",")}
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, object_store_memory=512 * 1024**2)
        rows = []
        for size, model in models.items():
            print(f"input {size}:", file=sys.stderr)
            rows.append(
                {"size": size, **measure(model, folder, args.cpus, args.repeats, args.batch_size, args.pause, work)}
            )
        ray.shutdown()
    load = os.getloadavg()
    text = (
        table(rows, args.images, args.cpus) + "\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `tools/bench_ray.py --images "
        f"{args.images} --input-size {args.input_size} --repeats {args.repeats}` on {_cpu_name()}, "
        f"{args.cpus} cores (load average {load[0]:.1f} at the end; the machine was shared with other jobs), "
        f"Ray {ray.__version__}; median of {args.repeats} interleaved repeats, Ray timed end to end "
        "(actor start and Parquet writes included, `ray.init` excluded). Seconds per repeat: "
        + "; ".join(
            f"{r['size']}: plain {', '.join(f'{t:.1f}' for t in r['all']['plain'])}, "
            f"Ray {', '.join(f'{t:.1f}' for t in r['all']['ray'])}"
            for r in rows
        )
        + "."
    )
    print(text)
    if not args.no_docs:
        write_docs(text)
        print(f"wrote the table into {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
