"""Deployment bundle: the models, their labels and a golden input/output pair, plus a self-test to prove them.

A bundle is a plain folder (``exported/NAME/bundle/``)::

    bundle.json        the manifest: every file's size and sha256, each model's precision, input, tolerances
    NAME.fp32.onnx …   the exported models (hard links to the export's files where the filesystem allows)
    labels.txt         one class name per line (class indices when the model has no names)
    golden.npz         "input" (float N×C×H×W, preprocessed), "pixels" (uint8 N×H×W×C, resized and cropped),
                       and "expected_<i>": model i's output on them, computed here with onnxruntime's CPU provider
    golden_<k>.png     the source images the golden input was made from, before any resizing

A folder, not a .zip: onnxruntime opens models by path (a zip would be unpacked first on every device), app
build systems (Android assets, Xcode resources) take folders, each file's hash is checked on its own, and
``zip -r`` makes an archive of it when one is wanted.

``selftest(bundle)`` — or ``edgecnn selftest BUNDLE`` — checks every file against ``bundle.json``, runs each
model on the golden input with onnxruntime and compares its output with the expected one, within tolerances set
by precision. It lives in ``edgecnn.runtime.selftest`` (numpy and onnxruntime only: no torch, no Pillow), so it
runs wherever the app's runtime does; it is re-exported here. Apps can also decode ``golden_<k>.png`` with their
own image code to check their preprocessing end to end.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.card import ModelCard
from ..core.errors import ArtifactError
from ..core.files import sha256_file, staged_output, write_text_atomic
from ..runtime.selftest import (
    BUNDLE_MANIFEST,
    SELFTEST_TOLERANCES,
    ModelCheck,
    SelftestResult,  # noqa: F401
    run_golden,
    selftest,
    verify_files,
)
from ..runtime.selftest import tolerance as _tolerance

__all__ = [
    "BUNDLE_MANIFEST",
    "GOLDEN",
    "LABELS",
    "SELFTEST_TOLERANCES",
    "BundleResult",
    "ModelCheck",
    "SelftestResult",
    "make_bundle",
    "selftest",
    "sha256_file",
    "verify_files",
]

GOLDEN = "golden.npz"
LABELS = "labels.txt"
GOLDEN_IMAGES = 2


@dataclass(frozen=True)
class BundleResult:
    """What ``make_bundle`` wrote."""

    path: Path
    models: tuple  # file names
    files: int
    selftest: SelftestResult

    def record(self, root: Path | None = None) -> dict:
        """A short record for the export manifest."""
        where = os.path.relpath(self.path, root) if root is not None else str(self.path)
        return {
            "folder": where,
            "models": list(self.models),
            "files": self.files,
            "selftest_passed": self.selftest.passed,
            "manifest": BUNDLE_MANIFEST,
        }


# --- making a bundle --------------------------------------------------------------------------------------------


def make_bundle(
    export_dir: str | os.PathLike,
    models: Sequence[str] | None = None,
    *,
    out_dir: str | os.PathLike | None = None,
    images: int = GOLDEN_IMAGES,
) -> BundleResult:
    """Write a deployment bundle for models of an export folder, and self-test it.

    Args:
        export_dir: the folder holding the exported files.
        models: file names in ``export_dir`` to bundle (``.onnx``, ``.tflite``, ``.pte``); default: every ``.onnx``
            and ``.tflite`` there (a ``.pte`` only when named: its runtime needs torch, which the device install
            that runs a bundle does not have).
        out_dir: the bundle folder; default ``export_dir/bundle``. Must not exist yet or be empty; the pipeline
            writes it inside its staging folder, so a failed export leaves no half bundle.
        images: how many golden images.

    Raises:
        ArtifactError: no models, models without an edgecnn card, or models that disagree on preprocessing.
    """
    export_dir = Path(export_dir)
    default = sorted(p.name for p in export_dir.iterdir() if p.suffix in DEVICE_SUFFIXES) if export_dir.is_dir() else []
    names = list(models) if models is not None else default
    if not names:
        raise ArtifactError(f"no .onnx or .tflite models in '{export_dir}' to bundle; export one first")
    if out_dir is None:  # the pipeline's case: export_dir is its staging folder, locked by the export
        return _write_bundle(export_dir, names, _empty_folder(export_dir / "bundle"), images)
    target = _empty_folder(Path(out_dir), create=False)
    with staged_output(
        target, force=False, writer="bundle"
    ) as staging:  # a folder of its own: locked, and complete or absent
        made = _write_bundle(export_dir, names, staging, images)
    return dataclasses.replace(made, path=Path(os.path.abspath(target)))


def _write_bundle(export_dir: Path, names: list, out: Path, images: int) -> BundleResult:
    cards = {n: _read_card(export_dir / n) for n in names}
    base = next(iter(cards.values()))
    float_card = next((c for c in cards.values() if not c.preprocess_embedded), base)
    photos = _golden_photos(images)
    pixels, floats = _golden_inputs(photos, float_card)
    golden: dict[str, np.ndarray] = {"input": floats, "pixels": pixels}
    entries = [_add_model(export_dir, out, i, name, cards[name], golden) for i, name in enumerate(names)]
    for k, photo in enumerate(photos):
        photo.save(out / f"golden_{k}.png")
    labels = base.labels or [str(i) for i in range(base.num_classes)]
    (out / LABELS).write_text("\n".join(labels) + "\n", encoding="utf-8")
    np.savez(out / GOLDEN, **golden)

    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != BUNDLE_MANIFEST)
    manifest = _manifest(out, base, float_card, entries, files, len(photos))
    write_text_atomic(out / BUNDLE_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    result = selftest(out)
    return BundleResult(out, tuple(names), len(files) + 1, result)


#: What a bundle takes by default: the formats the torch-free device install runs (ONNX; LiteRT with its extra).
DEVICE_SUFFIXES = (".onnx", ".tflite")


def _empty_folder(out: Path, create: bool = True) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArtifactError(f"'{out}' already exists and is not empty; remove it or choose another folder")
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def _add_model(export_dir: Path, out: Path, i: int, name: str, card: ModelCard, golden: dict) -> dict:
    """Link model ``i`` into the bundle, compute its expected output on the golden input, return its entry."""
    from ..runtime.runner import open_runner

    _link_or_copy(export_dir / name, out / name)
    runner = open_runner(out / name, providers="cpu")
    key = "pixels" if runner.inputs[0].type == "tensor(uint8)" else "input"
    golden[f"expected_{i}"] = run_golden(runner, golden[key])
    return {
        "file": name,
        "runtime": runner.runtime,
        "precision": card.precision,
        "task": card.task,
        "input": key,
        "expected": f"expected_{i}",
        "input_shape": list(card.input_shape),
        "layout": card.layout,
        "tolerance": _tolerance(card.precision),
    }


def _manifest(out: Path, base: ModelCard, float_card: ModelCard, entries: list, files: list, images: int) -> dict:
    import onnxruntime as ort

    from ..core.version import __version__

    return {
        "edgecnn_bundle": 1,
        "model": base.model,
        "task": base.task,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "made_with": {"edgecnn": __version__, "onnxruntime": ort.__version__, "provider": "CPUExecutionProvider"},
        "labels": {"file": LABELS, "names": bool(base.labels)},
        "golden": {
            "file": GOLDEN,
            "images": [f"golden_{k}.png" for k in range(images)],
            "input": "float N×C×H×W after the card's resize, crop and normalisation",
            "pixels": "uint8 N×H×W×C after resize and crop (for models with preprocessing in the graph)",
            "preprocessing": {
                "resize": float_card.resize,
                "crop": float_card.crop,
                "mean": float_card.mean,
                "std": float_card.std,
                "pixel_scale": float_card.pixel_scale,
                "interpolation": float_card.interpolation,
            },
        },
        "models": entries,
        "files": {n: {"size": (out / n).stat().st_size, "sha256": sha256_file(out / n)} for n in files},
        "selftest": "edgecnn selftest <this folder>  (or edgecnn.runtime.selftest.selftest(path))",
    }


def _read_card(path: Path) -> ModelCard:
    from ..runtime.runner import open_runner

    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file to bundle")
    runner = open_runner(path, providers="cpu")  # each format keeps its card its own way; the runner reads it
    card = ModelCard.from_metadata(runner.metadata, path.name)
    runner.close()
    if card is None:
        raise ArtifactError(f"{path.name} carries no edgecnn card; bundle models exported with 'edgecnn export'")
    return card


def _golden_photos(count: int) -> list:
    """Crops of real photographs (the default sample photographs, from dependencies): decisive outputs to compare."""
    from ..convert.calibration import sample_photos

    return sample_photos(count, seed=3, size=256)


def _golden_inputs(photos: list, card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    from ..runtime.preprocess import PreprocessParams, preprocess, preprocess_uint8

    params = PreprocessParams.from_card(
        card.replace(layout="NCHW", input_shape=["batch", len(card.mean), *card.crop])
        if card.preprocess_embedded
        else card
    )
    images = [p.convert("L") if params.channels == 1 else p for p in photos]
    pixels = np.stack([preprocess_uint8(im, params) for im in images])
    floats = np.stack([preprocess(im, params) for im in images])
    return pixels, floats


def _link_or_copy(src: Path, dst: Path) -> None:
    """A copy: a hard link would make the bundle's model and the export's one file (editing one edits both)."""
    shutil.copy2(src, dst)
