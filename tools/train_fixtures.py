"""Briefly train small versions of each zoo family on real data; export them; report held-out accuracy.

Classifiers learn scikit-learn's bundled digits (1,797 real 8×8 handwritten digits, upsampled to RGB 32×32, or
64×64 for AlexNet, which needs ≥ 63); U-Net learns a generated shapes dataset (32×32, background / disc /
rectangle). The architectures are the zoo's own (MobileNets at width 0.5); training is short and deterministic
(fixed steps, seed 0, one thread) so a model trains in seconds to a minute.

Each trained model is exported through the normal pipeline (``--weights --num-classes --input-size --calib``,
with the calibration split written as PNG images into a folder), and the fp32, fp16 and int8 ONNX artifacts
are scored on the held-out split: accuracy for classifiers, mean IoU against the true masks for U-Net.

    .venv/bin/python tools/train_fixtures.py                      # every family, int8 --int8 static
    .venv/bin/python tools/train_fixtures.py --models resnet18,unet --int8 auto --calib-method auto

Trained checkpoints are cached (see ``cache_dir``): ``$EDGECNN_CACHE/fixtures/<key>`` or
``~/.cache/edgecnn/fixtures/<key>``, where the key hashes this file and the torch version, so editing the
training code retrains. ``tests/conftest.py`` uses ``trained_fixture`` from here for the ``trained_checkpoint``
fixture.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEED = 0
CALIB_IMAGES = 256  # calibration split, written as PNGs
SPLIT = (1100, CALIB_IMAGES)  # digits: train, calibration; the remaining 441 are held out
SHAPES = (384, CALIB_IMAGES, 256)  # shapes: train, calibration, held out


@dataclass(frozen=True)
class FixtureSpec:
    """How one family's small version is trained."""

    name: str
    input_size: int
    steps: int  # optimizer steps of ``batch`` images
    lr: float
    batch: int = 32
    arch_options: dict = field(default_factory=dict)
    dataset: str = "digits"  # or "shapes"
    weight_decay: float = 0.0


# Steps and rates were chosen to reach ≥ 90% held-out accuracy (mIoU ≥ 0.8 for U-Net) in the fewest steps.
FIXTURES: dict[str, FixtureSpec] = {
    s.name: s
    for s in [
        FixtureSpec("resnet18", 32, steps=120, lr=1e-3),
        FixtureSpec("mobilenet_v2", 32, steps=200, lr=1e-2, arch_options={"width_mult": 0.5}),
        FixtureSpec("mobilenet_v3_large", 32, steps=300, lr=3e-3, arch_options={"width_mult": 0.5}),
        FixtureSpec("googlenet", 32, steps=120, lr=1e-3),
        FixtureSpec("unet", 32, steps=20, lr=5e-3, batch=8, dataset="shapes"),
        FixtureSpec("alexnet", 64, steps=100, lr=2e-4),
        FixtureSpec("vgg11_bn", 32, steps=60, lr=2e-4),
        FixtureSpec("resnet50", 32, steps=150, lr=1e-3),
    ]
}
TEST_MODELS = ("resnet18", "mobilenet_v2", "mobilenet_v3_large", "googlenet", "unet")  # the cached test fixture's


@dataclass(frozen=True)
class Fixture:
    """A trained checkpoint and the data that goes with it.

    ``heldout`` is preprocessed exactly as the exported model's card says (N×3×H×W float32); ``labels`` are
    class indices (classifiers) or N×H×W masks (U-Net).
    """

    name: str
    checkpoint: Path
    num_classes: int
    input_size: int
    arch_options: dict
    calib_dir: Path
    heldout: np.ndarray
    labels: np.ndarray
    task: str
    train_seconds: float
    torch_accuracy: float  # held-out accuracy (mIoU) of the PyTorch model right after training


def cache_key() -> str:
    import torch

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:16]


def cache_dir() -> Path:
    root = Path(os.environ.get("EDGECNN_CACHE") or Path.home() / ".cache" / "edgecnn")
    return root / "fixtures" / cache_key()


# ---------------------------------------------------------------------------------------------------- data


def _card(spec: FixtureSpec, num_classes: int):
    from edgecnn.models import get_spec
    from edgecnn.pipeline import build_card

    zoo = get_spec(spec.name)
    hw = (spec.input_size, spec.input_size)
    return build_card(zoo, hw, num_classes, None, None, zoo.dynamic_hw, None)


def digits_images(size: int) -> tuple[list, np.ndarray]:
    """The 1,797 digits as RGB PIL images of ``size``² (white on black, bilinear upsampling), and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for img in digits.images:
        gray = Image.fromarray((img * (255.0 / 16.0)).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        images.append(gray.convert("RGB"))
    return images, digits.target.astype(np.int64)


def shapes_images(count: int, size: int, seed: int) -> tuple[list, np.ndarray]:
    """Generated segmentation data: textured grey-ish backgrounds with 1–3 warm discs (class 1) and cool
    rectangles (class 2); masks hold the class of each pixel."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    images, masks = [], []
    xx = np.mgrid[0:size, 0:size][1]
    for _ in range(count):
        base = rng.uniform(60, 190) + rng.uniform(-15, 15, 3)
        grad = rng.uniform(-40, 40, 3)[None, None, :] * (xx[..., None] / size)
        pixels = base + grad + rng.normal(0, 12, (size, size, 3))
        img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        mask = Image.new("L", (size, size), 0)
        draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(1, 4))):
            cls = int(rng.integers(1, 3))
            w, h = rng.integers(size // 5, size // 2, 2)
            x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            box = [x0, y0, x0 + int(w), y0 + (int(w) if cls == 1 else int(h))]
            # Discs are warm and rectangles cool (random within that), so a briefly trained U-Net can tell them
            # apart by colour as well as by shape.
            warm = (rng.uniform(170, 255), rng.uniform(40, 160), rng.uniform(0, 60))
            colour = tuple(int(c) for c in (warm if cls == 1 else warm[::-1]))
            (draw.ellipse if cls == 1 else draw.rectangle)(box, fill=colour)
            (mdraw.ellipse if cls == 1 else mdraw.rectangle)(box, fill=cls)
        images.append(img)
        masks.append(np.asarray(mask, dtype=np.int64))
    return images, np.stack(masks)


def _splits(spec: FixtureSpec):
    """(train images, train labels), (calibration images), (held-out images, labels), num_classes."""
    if spec.dataset == "shapes":
        n_train, n_calib, n_test = SHAPES
        images, masks = shapes_images(n_train + n_calib + n_test, spec.input_size, SEED)
        tr, ca = slice(0, n_train), slice(n_train, n_train + n_calib)
        te = slice(n_train + n_calib, None)
        return (images[tr], masks[tr]), images[ca], (images[te], masks[te]), 3
    images, labels = digits_images(spec.input_size)
    order = np.random.default_rng(SEED).permutation(len(images))
    n_train, n_calib = SPLIT
    pick = lambda idx: [images[i] for i in idx]  # noqa: E731
    tr, ca, te = order[:n_train], order[n_train : n_train + n_calib], order[n_train + n_calib :]
    return (pick(tr), labels[tr]), pick(ca), (pick(te), labels[te]), 10


# -------------------------------------------------------------------------------------------------- training


def train(spec: FixtureSpec, images: list, labels: np.ndarray, card) -> tuple[dict, float]:
    """Train ``spec.name`` from scratch on the preprocessed ``images``; returns (state_dict, seconds)."""
    import torch

    from edgecnn.convert.onnx_export import recalibrate_batchnorm
    from edgecnn.models import create_model
    from edgecnn.runtime.preprocess import preprocess

    torch.manual_seed(SEED)
    threads = torch.get_num_threads()
    # One thread whatever the caller runs with: the same weights from the test suite's background trainer, a
    # pytest-xdist worker (one thread each) and this script; and beside two busy test workers on 2 cores the
    # default four trained in 225 s with one thread against 532 s with two (measured 2026-12-04; 150 s alone).
    torch.set_num_threads(1)
    # Denormal floats appear as some weights shrink and make CPU training 10-20x slower (seen: 184 s vs 11 s).
    torch.set_flush_denormal(True)
    t0 = time.perf_counter()
    try:
        x = torch.from_numpy(np.stack([preprocess(im, card) for im in images]))
        y = torch.from_numpy(labels)
        model = create_model(spec.name, num_classes=card.num_classes, **spec.arch_options).train()
        opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=spec.lr, total_steps=spec.steps, pct_start=0.15)
        gen = torch.Generator().manual_seed(SEED)
        order = torch.randperm(len(x), generator=gen)
        pos = 0
        for _ in range(spec.steps):
            if pos + spec.batch > len(order):
                order, pos = torch.randperm(len(x), generator=gen), 0
            idx = order[pos : pos + spec.batch]
            pos += spec.batch
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        # Short training leaves BatchNorm running averages behind the weights (MobileNetV3's momentum is 0.01):
        # re-estimate them on training images so the eval-mode model is the one that was trained.
        model.eval()
        recalibrate_batchnorm(model, [x[i : i + 64] for i in range(0, min(len(x), 512), 64)])
        return {k: v.detach().clone() for k, v in model.state_dict().items()}, time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def score(outputs: np.ndarray, labels: np.ndarray, task: str) -> float:
    """Accuracy (classification) or mean IoU over the classes present (segmentation), as a fraction."""
    pred = outputs.argmax(1)
    if task != "segmentation":
        return float((pred == labels).mean())
    ious = []
    for c in range(outputs.shape[1]):
        union = np.logical_or(pred == c, labels == c).sum()
        if union:
            ious.append(np.logical_and(pred == c, labels == c).sum() / union)
    return float(np.mean(ious))


def is_cached(name: str, root: Path | None = None) -> bool:
    """Whether ``name``'s trained fixture is in the cache (an entry is moved into place whole, meta.json last)."""
    return ((root or cache_dir()) / name / "meta.json").is_file()


def trained_fixture(name: str, root: Path | None = None) -> Fixture:
    """The trained small ``name`` with its data: loaded from the cache, or trained and cached (atomically)."""
    from edgecnn.models import get_spec

    if name not in FIXTURES:
        raise KeyError(f"no fixture recipe for {name!r}; have {', '.join(FIXTURES)}")
    spec = FIXTURES[name]
    task = get_spec(name).task
    folder = (root or cache_dir()) / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _cache_lock(folder):  # parallel test workers: one trains, the others wait and load its result
        if not is_cached(name, root):
            _train_into(name, spec, task, folder)
    meta = json.loads((folder / "meta.json").read_text())
    data = np.load(folder / "heldout.npz")
    return Fixture(
        name,
        folder / "model.pth",
        meta["num_classes"],
        meta["input_size"],
        meta["arch_options"],
        folder / "calib",
        data["x"],
        data["y"],
        meta["task"],
        meta["train_seconds"],
        meta["torch_accuracy"],
    )


@contextlib.contextmanager
def _cache_lock(folder: Path):
    """An exclusive advisory lock on ``folder``'s cache entry for the time it is checked (and trained)."""
    with open(folder.parent / f".{folder.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _train_into(name: str, spec: FixtureSpec, task: str, folder: Path) -> None:
    """Train ``name`` and move its checkpoint, calibration PNGs and held-out set into ``folder`` atomically."""
    import torch

    from edgecnn.models import create_model
    from edgecnn.runtime.preprocess import preprocess

    (train_images, train_labels), calib, (test_images, test_labels), n_classes = _splits(spec)
    card = _card(spec, n_classes)
    state, seconds = train(spec, train_images, train_labels, card)
    heldout = np.stack([preprocess(im, card) for im in test_images])
    model = create_model(name, num_classes=n_classes, **spec.arch_options)
    model.load_state_dict(state)
    with torch.no_grad():
        outs = np.concatenate(
            [model(torch.from_numpy(heldout[i : i + 64])).numpy() for i in range(0, len(heldout), 64)]
        )
    acc = score(outs, test_labels, task)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        torch.save(state, tmp / "model.pth")
        (tmp / "calib").mkdir()
        for i, im in enumerate(calib):
            im.save(tmp / "calib" / f"{i:04d}.png")
        np.savez_compressed(tmp / "heldout.npz", x=heldout, y=test_labels)
        meta = {
            "name": name,
            "num_classes": n_classes,
            "input_size": spec.input_size,
            "arch_options": spec.arch_options,
            "task": task,
            "train_seconds": round(seconds, 2),
            "torch_accuracy": acc,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process cached it first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------------- report


def evaluate(path: Path, fixture: Fixture) -> float:
    """Held-out score of one ONNX artifact (onnxruntime, CPU)."""
    from edgecnn.convert.int8.agreement import run_model

    return score(run_model(path, fixture.heldout)[0], fixture.labels, fixture.task)


def export_and_score(fixture: Fixture, out_dir: Path, *, int8="static", calib_method: str = "minmax") -> dict:
    """Export ``fixture`` through the normal pipeline (fp32, fp16, int8) and score each artifact held out."""
    from edgecnn import pipeline

    t0 = time.perf_counter()
    result = pipeline.export(
        fixture.name,
        out_dir / fixture.name,
        weights=str(fixture.checkpoint),
        num_classes=fixture.num_classes,
        input_size=fixture.input_size,
        fp16=True,
        int8=int8,
        calib=fixture.calib_dir,
        calib_method=calib_method,
        arch_options=fixture.arch_options,
        force=True,
    )
    row = {
        "model": fixture.name,
        "task": fixture.task,
        "input_size": fixture.input_size,
        "arch_options": fixture.arch_options,
        "train_seconds": fixture.train_seconds,
        "export_seconds": round(time.perf_counter() - t0, 1),
        "heldout": len(fixture.heldout),
        "torch": fixture.torch_accuracy,
    }
    for artifact in result.artifacts:
        row[artifact.precision] = evaluate(result.out_dir / artifact.file, fixture)
        row[f"{artifact.precision}_parity"] = artifact.parity.passed
    record = result.manifest.get("int8") or {}
    row["int8_kept"] = record.get("kept")
    row["int8_method"] = record.get("calibration_method")
    row["int8_fallback"] = len((record.get("fallback") or {}).get("nodes") or [])
    row["int8_decision"] = record.get("decision")
    return row


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(FIXTURES), help="comma-separated (default: all)")
    parser.add_argument("--out", default=None, help="export folder (default: a temporary one)")
    parser.add_argument("--int8", default="static", choices=("static", "auto"))
    parser.add_argument("--calib-method", default="minmax")
    parser.add_argument("--train-only", action="store_true", help="train and cache, do not export")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgecnn-fixtures-"))
    rows = []
    for name in names:
        t0 = time.perf_counter()
        fixture = trained_fixture(name)
        print(
            f"{name}: trained ({fixture.train_seconds:.0f} s, cached in {fixture.checkpoint.parent}), "
            f"held-out {'mIoU' if fixture.task == 'segmentation' else 'accuracy'} {fixture.torch_accuracy:.3f} "
            f"[{time.perf_counter() - t0:.0f} s]",
            file=sys.stderr,
            flush=True,
        )
        if args.train_only:
            continue
        rows.append(export_and_score(fixture, out, int8=args.int8, calib_method=args.calib_method))
    if rows:
        print(render(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def render(rows: list) -> str:
    head = ["model", "input", "metric", "torch", "fp32", "fp16", "int8", "int8−fp32", "int8 form"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        metric = "mIoU" if r["task"] == "segmentation" else "acc"
        int8 = r.get("int8")
        delta = f"{100 * (int8 - r['fp32']):+.1f}" if int8 is not None else "—"
        form = r.get("int8_kept") or "—"
        if r.get("int8_fallback"):
            form += f" ({r['int8_fallback']} float)"
        cells = [
            r["model"],
            str(r["input_size"]),
            metric,
            f"{100 * r['torch']:.1f}",
            f"{100 * r['fp32']:.1f}",
            f"{100 * r['fp16']:.1f}" if "fp16" in r else "—",
            f"{100 * int8:.1f}" if int8 is not None else "—",
            delta,
            form,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
