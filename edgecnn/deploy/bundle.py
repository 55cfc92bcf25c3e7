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
by precision. It imports numpy and onnxruntime only (no torch, no Pillow), so it runs wherever the app's runtime
does. Apps can also decode ``golden_<k>.png`` with their own image code to check their preprocessing end to end.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.card import ModelCard
from ..core.errors import ArtifactError, InputError
from ..core.files import sha256_file, write_text_atomic

BUNDLE_MANIFEST = "bundle.json"
GOLDEN = "golden.npz"
LABELS = "labels.txt"
GOLDEN_IMAGES = 2

#: How close another runtime (another CPU, another provider) must come to the golden outputs. fp32 allows
#: different kernels and summation orders (1e-3 of the output range), not a reduced-precision mode; fp16 and int8
#: are judged as in export parity (fp16 to ~3 digits, int8 at task level).
SELFTEST_TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"max_rel": 1e-3, "cosine": 0.9999, "top1": 1.0, "pixel": 0.999, "miou": 0.99},
    "fp16": {},
    "int8": {},
}


@dataclass(frozen=True)
class ModelCheck:
    """One model's self-test: its output on the golden input against the expected output."""

    file: str
    precision: str
    passed: bool
    max_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float | None
    failures: tuple
    providers: tuple

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failures"], d["providers"] = list(self.failures), list(self.providers)
        return d


@dataclass(frozen=True)
class SelftestResult:
    """The outcome of ``selftest``: files verified, and one ``ModelCheck`` per model."""

    bundle: Path
    files_verified: int
    checks: tuple
    onnxruntime: str

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {"bundle": str(self.bundle), "passed": self.passed, "files_verified": self.files_verified,
                "onnxruntime": self.onnxruntime, "models": [c.to_dict() for c in self.checks]}


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
        return {"folder": where, "models": list(self.models), "files": self.files,
                "selftest_passed": self.selftest.passed, "manifest": BUNDLE_MANIFEST}


# --- making a bundle --------------------------------------------------------------------------------------------


def make_bundle(export_dir: str | os.PathLike, models: Sequence[str] | None = None, *,
                out_dir: str | os.PathLike | None = None, images: int = GOLDEN_IMAGES) -> BundleResult:
    """Write a deployment bundle for models of an export folder, and self-test it.

    Args:
        export_dir: the folder holding the exported ``.onnx`` files.
        models: file names in ``export_dir`` to bundle; default: every ``.onnx`` there.
        out_dir: the bundle folder; default ``export_dir/bundle``. Must not exist yet or be empty; the pipeline
            writes it inside its staging folder, so a failed export leaves no half bundle.
        images: how many golden images.

    Raises:
        ArtifactError: no models, models without an edgecnn card, or models that disagree on preprocessing.
    """
    import onnxruntime as ort

    from .. import __version__

    export_dir = Path(export_dir)
    names = list(models) if models is not None else sorted(p.name for p in export_dir.glob("*.onnx"))
    if not names:
        raise ArtifactError(f"no .onnx models in '{export_dir}' to bundle; export one first")
    out = Path(out_dir) if out_dir is not None else export_dir / "bundle"
    if out.exists() and any(out.iterdir()):
        raise ArtifactError(f"'{out}' already exists and is not empty; remove it or choose another folder")
    out.mkdir(parents=True, exist_ok=True)

    cards = {n: _read_card(export_dir / n) for n in names}
    base = next(iter(cards.values()))
    float_card = next((c for c in cards.values() if not c.preprocess_embedded), base)
    photos = _golden_photos(images)
    pixels, floats = _golden_inputs(photos, float_card)
    golden: dict[str, np.ndarray] = {"input": floats, "pixels": pixels}

    entries = []
    for i, name in enumerate(names):
        _link_or_copy(export_dir / name, out / name)
        session = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        key = "pixels" if session.get_inputs()[0].type == "tensor(uint8)" else "input"
        golden[f"expected_{i}"] = _run(session, golden[key])
        card = cards[name]
        entries.append({"file": name, "precision": card.precision, "task": card.task, "input": key,
                        "expected": f"expected_{i}", "input_shape": list(card.input_shape), "layout": card.layout,
                        "tolerance": _tolerance(card.precision)})
    for k, photo in enumerate(photos):
        photo.save(out / f"golden_{k}.png")
    labels = base.labels or [str(i) for i in range(base.num_classes)]
    (out / LABELS).write_text("\n".join(labels) + "\n", encoding="utf-8")
    np.savez(out / GOLDEN, **golden)

    files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != BUNDLE_MANIFEST)
    manifest = {
        "edgecnn_bundle": 1,
        "model": base.model,
        "task": base.task,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "made_with": {"edgecnn": __version__, "onnxruntime": ort.__version__, "provider": "CPUExecutionProvider"},
        "labels": {"file": LABELS, "names": bool(base.labels)},
        "golden": {"file": GOLDEN, "images": [f"golden_{k}.png" for k in range(len(photos))],
                   "input": "float N×C×H×W after the card's resize, crop and normalisation",
                   "pixels": "uint8 N×H×W×C after resize and crop (for models with preprocessing in the graph)",
                   "preprocessing": {"resize": float_card.resize, "crop": float_card.crop,
                                     "mean": float_card.mean, "std": float_card.std,
                                     "pixel_scale": float_card.pixel_scale, "interpolation": float_card.interpolation}},
        "models": entries,
        "files": {n: {"size": (out / n).stat().st_size, "sha256": sha256_file(out / n)} for n in files},
        "selftest": "edgecnn selftest <this folder>  (or edgecnn.bundle.selftest(path))",
    }
    write_text_atomic(out / BUNDLE_MANIFEST, json.dumps(manifest, indent=2) + "\n")
    result = selftest(out)
    return BundleResult(out, tuple(names), len(files) + 1, result)


def _read_card(path: Path) -> ModelCard:
    import onnx

    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file to bundle")
    model = onnx.load(str(path), load_external_data=False)
    card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})
    if card is None:
        raise ArtifactError(f"{path.name} carries no edgecnn card; bundle models exported with 'edgecnn export'")
    return card


def _golden_photos(count: int) -> list:
    """Crops of real photographs (scikit-learn's two samples, a dependency): decisive outputs to compare."""
    from ..convert.calibration import sample_photos

    return sample_photos(count, seed=3, size=256)


def _golden_inputs(photos: list, card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    from ..runtime.preprocess import PreprocessParams, preprocess

    params = PreprocessParams.from_card(card.replace(layout="NCHW", input_shape=["batch", len(card.mean), *card.crop])
                                        if card.preprocess_embedded else card)
    images = [p.convert("L") if params.channels == 1 else p for p in photos]
    from ..runtime.preprocess import preprocess_uint8

    pixels = np.stack([preprocess_uint8(im, params) for im in images])
    floats = np.stack([preprocess(im, params) for im in images])
    return pixels, floats


def _tolerance(precision: str) -> dict:
    from ..runtime.compare import TOLERANCES

    return {**TOLERANCES.get(precision, TOLERANCES["fp32"]), **SELFTEST_TOLERANCES.get(precision, {})}


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (artifacts are never modified in place, and the bundle's hashes would catch it), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


# --- the self-test (numpy + onnxruntime only) ---------------------------------------------------------------------


def selftest(bundle: str | os.PathLike, providers: Sequence | str | None = None) -> SelftestResult:
    """Check a bundle's files against its manifest, then each model's output on the golden input.

    Args:
        bundle: the bundle folder, or its ``bundle.json``.
        providers: execution providers (short names such as ``"cpu"``, ``"coreml"``, ``"nnapi"``, or onnxruntime
            names), default CPU. Testing on the provider the app will use is the point.

    Returns:
        ``SelftestResult``; ``passed`` is True when every model matches within its tolerance.

    Raises:
        ArtifactError: not a bundle, a file missing or different from the manifest (damaged or edited copy),
            or a model onnxruntime cannot load or run.
    """
    import onnxruntime as ort

    from ..runtime.compare import compare
    from ..runtime.providers import make_session

    root = Path(bundle)
    if root.is_file() and root.name == BUNDLE_MANIFEST:
        root = root.parent
    manifest = _read_bundle_manifest(root)
    verified = verify_files(root, manifest)
    try:
        with np.load(root / manifest["golden"]["file"], allow_pickle=False) as data:
            golden = {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{root}: cannot read the golden data ({exc}); copy the bundle again") from None
    checks = []
    for entry in manifest["models"]:
        path = root / entry["file"]
        # make_session refuses a provider this onnxruntime lacks or drops, instead of falling back to CPU
        session = make_session(path, providers or "cpu", precision=entry["precision"])
        key, expected_key = entry["input"], entry["expected"]
        if key not in golden or expected_key not in golden:
            raise ArtifactError(f"{root}: golden data lacks '{key}' or '{expected_key}'; copy the bundle again")
        try:
            got = _run(session, golden[key])
        except InputError as exc:
            raise ArtifactError(f"{path.name}: {exc}") from None
        tol = entry.get("tolerance") or _tolerance(entry["precision"])
        report = compare(golden[expected_key], got, task=entry.get("task", "classification"),
                         precision=entry["precision"], tolerances=tol)
        checks.append(ModelCheck(entry["file"], entry["precision"], report.passed, report.max_abs, report.max_rel,
                                 report.cosine, report.top1_agreement, report.failures,
                                 tuple(session.get_providers())))
    return SelftestResult(root, verified, tuple(checks), ort.__version__)


def verify_files(root: Path, manifest: dict) -> int:
    """Compare every file listed in the manifest with its size and sha256; raise naming all that differ."""
    bad = []
    for name, record in manifest.get("files", {}).items():
        path = root / name
        if not path.is_file():
            bad.append(f"{name} (missing)")
        elif path.stat().st_size != record.get("size") or sha256_file(path) != record.get("sha256"):
            bad.append(f"{name} (sha256 differs)")
    if bad:
        raise ArtifactError(f"bundle {root} does not match its {BUNDLE_MANIFEST}: {', '.join(bad)}; the copy is "
                            "damaged or was edited: copy the bundle again")
    listed = set(manifest.get("files", {}))
    unlisted = [e["file"] for e in manifest["models"] if e["file"] not in listed]
    if unlisted or "golden" not in manifest or manifest["golden"]["file"] not in listed:
        raise ArtifactError(f"{root / BUNDLE_MANIFEST} does not list the hashes of all its models and golden data; "
                            "remake the bundle")
    return len(listed)


def _read_bundle_manifest(root: Path) -> dict:
    path = root / BUNDLE_MANIFEST
    if not root.exists():
        raise ArtifactError(f"{root}: no such bundle folder")
    if not path.is_file():
        raise ArtifactError(f"{root} is not an edgecnn bundle (no {BUNDLE_MANIFEST}); make one with "
                            "'edgecnn export NAME --bundle'")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); copy the bundle again") from None
    if not isinstance(manifest, dict) or manifest.get("edgecnn_bundle") != 1 or not manifest.get("models"):
        raise ArtifactError(f"{path} is not an edgecnn bundle manifest (version 1 with models)")
    return manifest


def _run(session, array: np.ndarray) -> np.ndarray:
    """Outputs for all rows of ``array``, in chunks the graph takes (a fixed batch is zero-padded)."""
    inp = session.get_inputs()[0]
    shape = inp.shape
    if array.ndim != len(shape) or any(isinstance(d, int) and d != a
                                       for d, a in zip(shape[1:], array.shape[1:])):
        raise InputError(f"the golden input has shape {list(array.shape)} but the model takes {shape}")
    fixed = shape[0] if isinstance(shape[0], int) else None
    if fixed is None:
        return session.run(None, {inp.name: array})[0]
    outs = []
    for start in range(0, len(array), fixed):
        chunk = array[start:start + fixed]
        n = len(chunk)
        if n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n,) + chunk.shape[1:], chunk.dtype)])
        outs.append(session.run(None, {inp.name: chunk})[0][:n])
    return np.concatenate(outs)

