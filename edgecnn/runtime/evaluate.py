"""Evaluate exported models on a labelled data set, side by side — numpy, onnxruntime and Pillow only (no torch).

    from edgecnn.runtime.evaluate import evaluate

    result = evaluate(["mobilenet_v2.onnx", "mobilenet_v2.int8.onnx"], "val/")
    print(result.to_markdown())

Data:
    classification: an ImageFolder (``data/<class>/*.jpg``, each folder named by a class label or a class index)
        or a CSV of ``path,label`` rows (paths relative to the CSV). The CSV is UTF-8, with or without a byte-order
        mark (Excel's "CSV UTF-8"); another encoding is refused in one line naming the line (guessing it could
        misread file names). Blank rows and rows starting with ``#`` are skipped; the first row is a header, and
        skipped, when its first cell is one of ``eval_data.HEADER_PATHS`` (path, file, filename, image …) and its
        second one of ``eval_data.HEADER_LABELS`` (label, class, category, target …), in any case.
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

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import InputError
from .eval_data import check_pair, mask_for, mask_indices, pixel_scores, read_classification_data
from .predictor import Predictor
from .preprocess import list_images, load_image

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFUSION_MAX_CLASSES = 50


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
    providers_per_model: Sequence[str | Sequence[str]] | None = None,
) -> EvalResult:
    """Score one or more exported models on ``data`` (see the module docstring).

    Args:
        models: .onnx, .tflite or .pte files (each on its own runtime); the first is the baseline of the comparisons.
        data: an ImageFolder, a CSV of ``path,label``, or a folder with ``images/`` and ``masks/``.
        labels_from: ``"card"`` or ``"folder"`` (classification only).
        providers: onnxruntime providers, as ``Predictor`` takes them; ``providers_per_model``: one entry per model.
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
    per_model = [providers] * len(models) if providers_per_model is None else list(providers_per_model)
    if len(per_model) != len(models):
        raise InputError(f"{len(models)} models but {len(per_model)} provider entries: give one per model")
    predictors = [Predictor(m, (e,) if isinstance(e, str) else tuple(e)) for m, e in zip(models, per_model)]
    tasks = {p.task for p in predictors}
    if len(tasks) != 1:
        raise InputError(f"the models do not share one task ({', '.join(sorted(tasks))}); evaluate them separately")
    if tasks == {"segmentation"}:
        return _evaluate_segmentation(predictors, data, int(batch), progress)
    return _evaluate_classification(predictors, data, labels_from, int(batch), progress)


# --------------------------------------------------------------------------- classification


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
    samples = read_classification_data(data)
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


def _segmentation_pairs(data: Path) -> tuple[list, list, list]:
    """(readable image/mask pairs, each checked; (path, reason) of unreadable files; images without a mask)."""
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
        check_pair(img_path, mask_path)
    unmatched_list = [(str(images_dir / n), "no mask of the same stem in masks/") for n in unmatched]
    return paired, unreadable, unmatched_list


def _score_segmentation(pred: Predictor, paired: list, batch: int, tick) -> tuple[ModelResult, np.ndarray, int]:
    """One model over every pair: its result, per-image pixel accuracy, and its class count."""
    inter = union = None
    correct_px, total_px, image_acc, k = 0, 0, [], 0
    for start in range(0, len(paired), batch):
        chunk = paired[start : start + batch]
        logits = pred.run(pred.preprocess([i for i, _ in chunk]))
        k = max(2, logits.shape[1])
        if inter is None:
            inter, union = np.zeros(k, np.int64), np.zeros(k, np.int64)
        predicted = (logits[:, 0] > 0).astype(np.int64) if logits.shape[1] == 1 else logits.argmax(1)
        for (_, mask_path), p in zip(chunk, predicted):
            with Image.open(mask_path) as m:
                truth = mask_for(mask_indices(m), pred.params)
            n_valid, n_hit, i_k, u_k = pixel_scores(truth, p, k, mask_path, pred.path.name)
            correct_px, total_px = correct_px + n_hit, total_px + n_valid
            image_acc.append(n_hit / max(n_valid, 1))
            inter += i_k
            union += u_k
        tick(len(chunk))
    present = union > 0
    iou = {str(c): (float(inter[c] / union[c]) if present[c] else None) for c in range(len(union))}
    result = ModelResult(
        path=str(pred.path),
        model=_model_name(pred),
        precision=_precision(pred),
        n_images=len(paired),
        pixel_accuracy=correct_px / max(total_px, 1),
        miou=float((inter[present] / union[present]).mean()) if present.any() else None,
        per_class_iou=iou,
    )
    return result, np.asarray(image_acc), k


def _evaluate_segmentation(predictors, data: Path, batch: int, progress) -> EvalResult:
    paired, unreadable, unmatched = _segmentation_pairs(data)
    total, done = len(paired) * len(predictors), [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress:
            progress(done[0], total)

    scored = [_score_segmentation(pred, paired, batch, tick) for pred in predictors]
    results = [r for r, _, _ in scored]
    n_classes = max((k for _, _, k in scored), default=0)
    return EvalResult(
        task="segmentation",
        data=str(data),
        classes=tuple(str(c) for c in range(n_classes)),
        n_images=len(paired),
        models=tuple(results),
        comparisons=_compare(results, [acc for _, acc, _ in scored]),
        unreadable=tuple(unreadable) + tuple(unmatched),
    )
