"""Evaluate exported models on a labelled data set, side by side — numpy, onnxruntime and Pillow only (no torch).

    from edgecnn.runtime.evaluate import evaluate

    result = evaluate(["mobilenet_v2.onnx", "mobilenet_v2.int8.onnx"], "val/")
    print(result.to_markdown())

Data:
    classification: an ImageFolder (``data/<class>/*.jpg``, each folder named by a class label or a class index)
        or a CSV of ``path,label`` rows (paths relative to the CSV). The CSV is UTF-8, with or without a byte-order
        mark (Excel's "CSV UTF-8"); another encoding is refused in one line naming the line (guessing it could
        misread file names). Blank rows and rows starting with ``#`` are skipped; the first row is a header, and
        skipped, when its first cell is one of ``HEADER_PATHS`` (path, file, filename, image …) and its second one
        of ``HEADER_LABELS`` (label, class, category, target …), in any case.
    segmentation: ``data/images/`` and ``data/masks/`` holding files of the same stems; a mask is a single-channel
        image of class indices (255 is ignored): L and P by value (a P mask's palette index), 1-bit as 0/1, 16- and
        32-bit integers by value. A photo is read upright, its EXIF orientation applied, as predict reads it; its
        mask is read as stored, turned by its own EXIF orientation if it carries one, and must then have the
        upright photo's size (a mask at the stored size of a rotated photo is refused, saying so).

Classes (``labels_from``): ``"card"`` maps each label to the model's own class (by name in its card's labels, or by
index); ``"folder"`` numbers the data's labels in sorted order, as torchvision's ImageFolder does (for models
trained on such a folder). Every image is counted: unreadable ones are listed in the result, never dropped silently.
Comparisons are against the first model: the top-1 difference with a paired bootstrap 95% interval (images
resampled together, seeded).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from ..core.documents import wide_encoding
from ..core.errors import InputError
from .predictor import Predictor
from .preprocess import PreprocessParams, list_images, load_image, resize_crop_indices

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFUSION_MAX_CLASSES = 50
IGNORE_INDEX = 255


@dataclass(frozen=True)
class Comparison:
    """``model`` minus ``baseline`` in top-1 (segmentation: pixel accuracy), with its paired bootstrap interval."""

    model: str
    baseline: str
    difference: float
    low: float
    high: float
    resamples: int = BOOTSTRAP_RESAMPLES
    confidence: float = 0.95


@dataclass(frozen=True)
class ModelResult:
    """One artifact's scores. Classification fills top1/top5/recall/confusion; segmentation pixel_accuracy/miou."""

    path: str
    model: str
    precision: str
    n_images: int
    top1: float | None = None
    top5: float | None = None  # None with fewer than 5 classes
    per_class_recall: dict = field(default_factory=dict)  # data class -> recall (None: no image of it)
    confusion: tuple | None = None  # rows: true data class; columns: predicted data class, then "other"
    pixel_accuracy: float | None = None
    miou: float | None = None
    per_class_iou: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvalResult:
    task: str
    data: str
    classes: tuple  # the data's class names (classification) or the model's class indices (segmentation)
    n_images: int  # images evaluated (readable and labelled)
    models: tuple  # ModelResult, in the order given
    comparisons: tuple = ()  # Comparison of every model after the first against the first
    unreadable: tuple = ()  # (path, reason) of every image that could not be read

    def to_dict(self) -> dict:
        out = asdict(self)
        out["unreadable"] = [{"path": p, "reason": r} for p, r in self.unreadable]
        out["classes"] = list(self.classes)
        for m in out["models"]:
            if m["confusion"] is not None:
                m["confusion"] = [list(r) for r in m["confusion"]]
        return out

    def to_markdown(self) -> str:
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
        lines = [
            f"**{self.task}** on `{self.data}`: {self.n_images} images, {len(self.classes)} classes"
            + (f", {len(self.unreadable)} unreadable" if self.unreadable else ""),
            "",
        ]
        if self.task == "classification":
            lines += ["| model | precision | top-1 | top-5 |", "|---|---|---|---|"]
            lines += [f"| {m.model} | {m.precision} | {pct(m.top1)} | {pct(m.top5)} |" for m in self.models]
        else:
            lines += ["| model | precision | pixel accuracy | mIoU |", "|---|---|---|---|"]
            lines += [f"| {m.model} | {m.precision} | {pct(m.pixel_accuracy)} | {pct(m.miou)} |" for m in self.models]
        if self.comparisons:
            what = "top-1" if self.task == "classification" else "pixel accuracy"
            lines += ["", f"| model | vs | Δ {what} | 95% interval |", "|---|---|---|---|"]
            lines += [
                f"| {c.model} | {c.baseline} | {100 * c.difference:+.2f} pp | "
                f"[{100 * c.low:+.2f}, {100 * c.high:+.2f}] pp |"
                for c in self.comparisons
            ]
        if self.unreadable:
            lines += ["", "Unreadable images:"] + [f"- `{p}`: {r}" for p, r in self.unreadable]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- entry point


def evaluate(
    models: Sequence[str | os.PathLike],
    data: str | os.PathLike,
    *,
    labels_from: str = "card",
    providers: str | Sequence[str] = "cpu",
    batch: int = 32,
    progress: Callable[[int, int], Any] | None = None,
) -> EvalResult:
    """Score one or more exported models on ``data`` (see the module docstring).

    Args:
        models: .onnx files; the first is the baseline of the comparisons.
        data: an ImageFolder, a CSV of ``path,label``, or a folder with ``images/`` and ``masks/``.
        labels_from: ``"card"`` or ``"folder"`` (classification only).
        providers: onnxruntime providers, as ``Predictor`` takes them.
        batch: images per preprocessing / onnxruntime step.
        progress: called as ``progress(done, total)`` after each step (total = images × models).

    Raises:
        InputError: no models, no (labelled) images, a label no model class matches, a mask of the wrong size.
    """
    if not models:
        raise InputError("evaluate needs at least one model file")
    if labels_from not in ("card", "folder"):
        raise InputError(f"labels_from must be 'card' or 'folder', got {labels_from!r}")
    if int(batch) < 1:
        raise InputError(f"batch must be at least 1, got {batch}")
    data = Path(data)
    if not data.exists():
        raise InputError(f"{data}: no such data folder or CSV file")
    providers = (providers,) if isinstance(providers, str) else tuple(providers)
    predictors = [Predictor(m, providers) for m in models]
    tasks = {p.task for p in predictors}
    if len(tasks) != 1:
        raise InputError(f"the models do not share one task ({', '.join(sorted(tasks))}); evaluate them separately")
    if tasks == {"segmentation"}:
        return _evaluate_segmentation(predictors, data, int(batch), progress)
    return _evaluate_classification(predictors, data, labels_from, int(batch), progress)


# --------------------------------------------------------------------------- classification


#: A CSV's first row is a header when its first cell is one of these and its second one of ``HEADER_LABELS``
#: (any case, spaces around ignored); any other first row is data.
HEADER_PATHS = ("path", "file", "filename", "file_name", "filepath", "image", "image_path", "img")
HEADER_LABELS = ("label", "class", "class_name", "category", "target")


def _read_classification_data(data: Path) -> list[tuple[Path, str]]:
    """(image path, label) of every sample in an ImageFolder or a CSV."""
    if data.is_file():
        return _read_csv(data)
    classes = sorted(d for d in data.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = [(img, d.name) for d in classes for img in list_images(d)]
    if not samples:
        raise InputError(
            f"{data}: no labelled images; expected one subfolder of images per class "
            "(data/<label>/image.jpg) or a CSV of path,label"
        )
    return samples


def _read_csv(data: Path) -> list[tuple[Path, str]]:
    """Rows of ``path,label`` (paths relative to the CSV); blank rows and rows starting with ``#`` are skipped,
    and the first row is skipped when it is a header (``HEADER_PATHS``, ``HEADER_LABELS``)."""
    samples: list[tuple[Path, str]] = []
    reader = csv.reader(io.StringIO(_csv_text(data), newline=""))
    first = True
    for row in reader:
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2 or not row[1].strip():
            other = next((d for d in ";\t|" if d in row[0]), None)
            hint = f" (this row is separated by {other!r}: save the CSV with commas)" if other else ""
            raise InputError(f"{data}, line {reader.line_num}: expected 'path,label', got {','.join(row)!r}{hint}")
        path, label = row[0].strip(), row[1].strip()
        if first and path.lower() in HEADER_PATHS and label.lower() in HEADER_LABELS:
            first = False
            continue
        first = False
        p = Path(path)
        samples.append((p if p.is_absolute() else data.parent / p, label))
    if not samples:
        raise InputError(f"{data}: no labelled images (expected rows of 'path,label')")
    return samples


def _csv_text(data: Path) -> str:
    """A CSV's text: UTF-8, with or without the byte-order mark Excel's "CSV UTF-8" writes. Any other encoding
    (Excel's plain "CSV" is Windows-1252) is refused, naming the line: guessing it could misread file names."""
    try:
        raw = data.read_bytes()
    except OSError as exc:
        raise InputError(f"{data}: cannot read it ({exc.strerror or exc})") from None
    save_as = "save it as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)')"
    wide = wide_encoding(raw)
    if wide:
        raise InputError(f"{data} is {wide} text; a CSV is read as UTF-8: {save_as}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{data}, line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}, as Windows-1252 or "
            f"Latin-1 write accented letters); a CSV is read as UTF-8: {save_as}"
        ) from None


def _class_index(predictor: Predictor, classes: Sequence[str], labels_from: str, n_out: int) -> np.ndarray:
    """The model output index of each data class."""
    if labels_from == "folder":
        if len(classes) > n_out:
            raise InputError(
                f"{predictor.path.name} has {n_out} classes, the data {len(classes)}: "
                "with labels_from='folder' the data's classes are the model's first ones"
            )
        return np.arange(len(classes))
    names = list(predictor.labels or [])
    by_name = {n: i for i, n in enumerate(names)}
    out, unknown = [], []
    for c in classes:
        if c in by_name:
            out.append(by_name[c])
        elif c.isdigit() and int(c) < n_out:
            out.append(int(c))
        else:
            unknown.append(c)
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        has = f"its labels ({', '.join(names[:3])}, …)" if names else "no labels in its card"
        raise InputError(
            f"label {shown} matches no class of {predictor.path.name} ({n_out} classes, {has}); "
            "name folders / CSV labels by the model's labels or class indices, or pass "
            "labels_from='folder'"
        )
    return np.asarray(out)


def _readable(paths: Sequence[Path]) -> tuple[list[int], list[tuple[str, str]]]:
    ok, bad = [], []
    for i, p in enumerate(paths):
        try:
            load_image(p)
            ok.append(i)
        except InputError as exc:
            bad.append((str(p), str(exc)))
        except OSError as exc:
            bad.append((str(p), f"{type(exc).__name__}: {exc}"))
    return ok, bad


def _model_name(p: Predictor) -> str:
    return p.path.name


def _precision(p: Predictor) -> str:
    return p.card.precision if p.card else "unknown"


def _evaluate_classification(predictors, data: Path, labels_from: str, batch: int, progress) -> EvalResult:
    samples = _read_classification_data(data)
    classes = tuple(sorted({label for _, label in samples}, key=_natural))
    ok, unreadable = _readable([p for p, _ in samples])
    if not ok:
        raise InputError(f"{data}: none of its {len(samples)} images could be read (first: {unreadable[0][1]})")
    paths = [samples[i][0] for i in ok]
    truth = np.asarray([classes.index(samples[i][1]) for i in ok])
    total, done = len(paths) * len(predictors), 0
    results, correct_by_model = [], []
    for pred in predictors:
        logits = []
        for start in range(0, len(paths), batch):
            logits.append(
                pred.run(pred.preprocess(paths[start : start + batch])).reshape(min(batch, len(paths) - start), -1)
            )
            done += len(logits[-1])
            if progress:
                progress(done, total)
        logits = np.concatenate(logits).astype(np.float64)
        index = _class_index(pred, classes, labels_from, logits.shape[1])
        target = index[truth]
        order = np.argsort(-logits, axis=1, kind="stable")
        top1 = order[:, 0] == target
        top5 = (order[:, :5] == target[:, None]).any(1) if logits.shape[1] >= 5 else None
        recall = {c: (float(top1[truth == k].mean()) if (truth == k).any() else None) for k, c in enumerate(classes)}
        confusion = None
        if len(classes) <= CONFUSION_MAX_CLASSES:
            to_data = {int(m): k for k, m in enumerate(index)}
            predicted = np.asarray([to_data.get(int(m), len(classes)) for m in order[:, 0]])
            matrix = np.zeros((len(classes), len(classes) + 1), dtype=np.int64)
            np.add.at(matrix, (truth, predicted), 1)
            confusion = tuple(tuple(int(v) for v in row) for row in matrix)
        results.append(
            ModelResult(
                path=str(pred.path),
                model=_model_name(pred),
                precision=_precision(pred),
                n_images=len(paths),
                top1=float(top1.mean()),
                top5=None if top5 is None else float(top5.mean()),
                per_class_recall=recall,
                confusion=confusion,
            )
        )
        correct_by_model.append(top1.astype(np.float64))
    return EvalResult(
        task="classification",
        data=str(data),
        classes=classes,
        n_images=len(paths),
        models=tuple(results),
        comparisons=_compare(results, correct_by_model),
        unreadable=tuple(unreadable),
    )


def paired_bootstrap(
    baseline: np.ndarray,
    other: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """``mean(other) - mean(baseline)`` over paired per-image scores, and its percentile bootstrap interval."""
    baseline, other = np.asarray(baseline, np.float64), np.asarray(other, np.float64)
    n = len(baseline)
    rng = np.random.default_rng(seed)
    delta = other - baseline
    diffs = []
    step = max(1, min(resamples, 20_000_000 // max(n, 1)))  # bound the index array's memory
    for start in range(0, resamples, step):
        idx = rng.integers(0, n, size=(min(step, resamples - start), n))
        diffs.append(delta[idx].mean(axis=1))
    diffs = np.concatenate(diffs)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    point = float(delta.mean())
    return point, float(min(low, point)), float(max(high, point))


def _compare(results, scores) -> tuple:
    out = []
    for res, s in zip(results[1:], scores[1:]):
        point, low, high = paired_bootstrap(scores[0], s)
        out.append(Comparison(model=res.model, baseline=results[0].model, difference=point, low=low, high=high))
    return tuple(out)


def _natural(label: str):
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


# --------------------------------------------------------------------------- segmentation


#: Mask modes read as class indices: L and P by value (a P mask's palette index is its class, as VOC stores them),
#: 1-bit as 0/1, 32- and 16-bit integer modes by value.
MASK_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L", "I;16N")
_EXIF_ORIENTATION = 0x0112
_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter: width and height swap


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError):  # unreadable EXIF: load_image would not rotate either
        return 1
    return value if isinstance(value, int) else 1


def _upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of an image once its EXIF orientation is applied, as ``load_image`` (predict) reads it."""
    w, h = image.size
    return (h, w) if _orientation(image) in _SWAPS_SIDES else (w, h)


def mask_indices(mask: Image.Image) -> np.ndarray:
    """A mask's class indices (int64, H×W) with its own EXIF orientation applied, if it carries one.

    Raises:
        InputError: a mode that does not hold one class index per pixel (RGB, LA, F …).
    """
    name = getattr(mask, "filename", "") or "image"
    if mask.mode not in MASK_MODES:
        raise InputError(
            f"mask {name} is a {mask.mode} image; a mask holds one class index per pixel (a "
            "single-channel L, P, 1-bit or 16-bit PNG)"
        )
    if _orientation(mask) != 1:
        mask = ImageOps.exif_transpose(mask)
    # 1-bit pixels are 0/1 here; Pillow's convert("I") would make them 0/255, and 255 means "ignore"
    return np.asarray(mask).astype(np.int64)  # PNG masks hold no negative values (Pillow reads 16-bit as I;16/I)


def _mask_for(indices: np.ndarray, params: PreprocessParams) -> np.ndarray:
    """Class indices through the same resize and centre crop as their image, with nearest-neighbour resampling
    (Pillow's NEAREST values, computed over the crop window only: memory of the crop's size whatever the aspect)."""
    return resize_crop_indices(indices, params, IGNORE_INDEX).astype(np.int64, copy=False)


def _check_pair(img_path: Path, mask_path: Path) -> None:
    """A mask is read as stored, turned by its own EXIF orientation if it has one, and must then have the size of
    its photo as predict reads it: upright, the photo's EXIF orientation applied."""
    with Image.open(img_path) as img, Image.open(mask_path) as mask:
        if mask.mode not in MASK_MODES:
            raise InputError(
                f"mask {mask_path} is a {mask.mode} image; a mask holds one class index per pixel "
                "(a single-channel L, P, 1-bit or 16-bit PNG)"
            )
        want, got = _upright_size(img), _upright_size(mask)
        if want == got:
            return
        if got == img.size:
            raise InputError(
                f"mask {mask_path} is {got[0]}x{got[1]}, the size {img_path.name} is stored at, but "
                f"the photo has an EXIF orientation ({_orientation(img)}) and is read upright at "
                f"{want[0]}x{want[1]}, as predict reads it: save the mask upright at that size"
            )
        raise InputError(
            f"mask {mask_path} is {got[0]}x{got[1]}, its image {img_path.name} {want[0]}x{want[1]}: "
            "a mask must have its image's size (upright, EXIF orientation applied)"
        )


def _pixel_scores(truth: np.ndarray, predicted: np.ndarray, k: int, mask_path: Path, model: str) -> tuple:
    """(valid pixels, hits, per-class intersections, per-class unions) of one mask; 255 is ignored."""
    valid = truth != IGNORE_INDEX
    if (truth[valid] >= k).any():
        raise InputError(f"mask {mask_path} holds class {int(truth[valid].max())}, but {model} has {k} classes")
    hit = (predicted == truth) & valid
    t, q = truth[valid], predicted[valid]
    inter = np.bincount(t[t == q], minlength=k)[:k]
    union = (np.bincount(t, minlength=k) + np.bincount(q, minlength=k))[:k] - inter
    return int(valid.sum()), int(hit.sum()), inter, union


def _evaluate_segmentation(predictors, data: Path, batch: int, progress) -> EvalResult:
    images_dir, masks_dir = data / "images", data / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        raise InputError(f"{data}: a segmentation data set needs the folders images/ and masks/ (same file stems)")
    images = list_images(images_dir)
    masks = {p.stem: p for p in list_images(masks_dir)}
    if not images:
        raise InputError(f"{images_dir}: no images")
    unmatched = [p.name for p in images if p.stem not in masks]
    if len(unmatched) == len(images):
        raise InputError(f"{data}: no image of images/ has a mask of the same stem in masks/")
    paired = [(p, masks[p.stem]) for p in images if p.stem in masks]
    ok, unreadable = _readable([x for pair in paired for x in pair])
    bad = {Path(p) for p, _ in unreadable}
    paired = [(i, m) for i, m in paired if i not in bad and m not in bad]
    if not paired:
        raise InputError(f"{data}: none of its image/mask pairs could be read")
    for img_path, mask_path in paired:
        _check_pair(img_path, mask_path)
    total, done = len(paired) * len(predictors), 0
    results, per_image = [], []
    n_classes = 0
    for pred in predictors:
        inter = union = None
        correct_px, total_px, image_acc = 0, 0, []
        for start in range(0, len(paired), batch):
            chunk = paired[start : start + batch]
            logits = pred.run(pred.preprocess([i for i, _ in chunk]))
            k = max(2, logits.shape[1])
            if inter is None:
                inter, union = np.zeros(k, np.int64), np.zeros(k, np.int64)
                n_classes = max(n_classes, k)
            predicted = (logits[:, 0] > 0).astype(np.int64) if logits.shape[1] == 1 else logits.argmax(1)
            for (_, mask_path), p in zip(chunk, predicted):
                with Image.open(mask_path) as m:
                    truth = _mask_for(mask_indices(m), pred.params)
                n_valid, n_hit, i_k, u_k = _pixel_scores(truth, p, k, mask_path, pred.path.name)
                correct_px, total_px = correct_px + n_hit, total_px + n_valid
                image_acc.append(n_hit / max(n_valid, 1))
                inter += i_k
                union += u_k
            done += len(chunk)
            if progress:
                progress(done, total)
        present = union > 0
        iou = {str(c): (float(inter[c] / union[c]) if present[c] else None) for c in range(len(union))}
        results.append(
            ModelResult(
                path=str(pred.path),
                model=_model_name(pred),
                precision=_precision(pred),
                n_images=len(paired),
                pixel_accuracy=correct_px / max(total_px, 1),
                miou=float((inter[present] / union[present]).mean()) if present.any() else None,
                per_class_iou=iou,
            )
        )
        per_image.append(np.asarray(image_acc))
    unmatched_list = tuple((str(images_dir / n), "no mask of the same stem in masks/") for n in unmatched)
    return EvalResult(
        task="segmentation",
        data=str(data),
        classes=tuple(str(c) for c in range(n_classes)),
        n_images=len(paired),
        models=tuple(results),
        comparisons=_compare(results, per_image),
        unreadable=tuple(unreadable) + unmatched_list,
    )
