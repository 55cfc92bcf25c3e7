"""Reading labelled data for ``runtime.evaluate``: a classification CSV (UTF-8, header detected) or ImageFolder,
and segmentation masks (class indices per pixel, EXIF orientation, size checked against the upright photo).

Only numpy and Pillow are imported here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..core.documents import wide_encoding
from ..core.errors import InputError
from .preprocess import PreprocessParams, list_images, resize_crop_indices

IGNORE_INDEX = 255  # a mask pixel no class is scored on


#: A CSV's first row is a header when its first cell is one of these and its second one of ``HEADER_LABELS``
#: (any case, spaces around ignored); any other first row is data.
HEADER_PATHS = ("path", "file", "filename", "file_name", "filepath", "image", "image_path", "img")
HEADER_LABELS = ("label", "class", "class_name", "category", "target")


def read_classification_data(data: Path) -> list[tuple[Path, str]]:
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


def mask_for(indices: np.ndarray, params: PreprocessParams) -> np.ndarray:
    """Class indices through the same resize and centre crop as their image, with nearest-neighbour resampling
    (Pillow's NEAREST values, computed over the crop window only: memory of the crop's size whatever the aspect)."""
    return resize_crop_indices(indices, params, IGNORE_INDEX).astype(np.int64, copy=False)


def check_pair(img_path: Path, mask_path: Path) -> None:
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


def pixel_scores(truth: np.ndarray, predicted: np.ndarray, k: int, mask_path: Path, model: str) -> tuple:
    """(valid pixels, hits, per-class intersections, per-class unions) of one mask; 255 is ignored."""
    valid = truth != IGNORE_INDEX
    if (truth[valid] >= k).any():
        raise InputError(f"mask {mask_path} holds class {int(truth[valid].max())}, but {model} has {k} classes")
    hit = (predicted == truth) & valid
    t, q = truth[valid], predicted[valid]
    inter = np.bincount(t[t == q], minlength=k)[:k]
    union = (np.bincount(t, minlength=k) + np.bincount(q, minlength=k))[:k] - inter
    return int(valid.sum()), int(hit.sum()), inter, union
