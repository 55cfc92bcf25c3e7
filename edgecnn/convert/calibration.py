"""Images for calibration and parity: a user's folder, or the documented default sample.

Every image goes through the model's own preprocessing (``edgecnn.runtime.preprocess``, the same code the
torch-free runtime uses), so int8 ranges are measured on exactly what the deployed model will see.

The default, used when no folder is given, is ``sample_photos``: random crops, flips and scales of five
photographs that ship inside scikit-learn (a Chinese temple, a flower) and scikit-image (a cat, an espresso, a
rocket). They are real photographs, which beats noise, but they are not your deployment domain: calibrate on
real images from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.card import ModelCard
from ..core.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEFAULT_SOURCE = "sample-photos (random crops of the photographs bundled with scikit-learn and scikit-image)"


@dataclass(frozen=True)
class ImageSet:
    """Preprocessed images plus a record of where they came from (for the manifest)."""

    arrays: np.ndarray  # N×C×H×W float32 (or N×H×W×C uint8 for embedded preprocessing)
    source: str
    files: tuple = ()  # (relative name, sha256) of each image used
    skipped: tuple = ()  # (name, reason) of each unreadable image
    preprocessing: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {
            "source": self.source,
            "count": int(len(self.arrays)),
            "files": [{"name": n, "sha256": h} for n, h in self.files],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
            "preprocessing": self.preprocessing,
        }


def preprocessing_record(card: ModelCard) -> dict:
    return {
        "resize": card.resize,
        "crop": card.crop,
        "interpolation": card.interpolation,
        "mean": card.mean,
        "std": card.std,
        "pixel_scale": card.pixel_scale,
        "color_order": card.color_order,
    }


def image_files(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, by suffix."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"calibration folder '{folder}' does not exist; pass a folder of .jpg/.png images")
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder; pass a folder of .jpg/.png images with --calib")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_folder(folder: str | Path, card: ModelCard, limit: int | None = None) -> ImageSet:
    """Preprocess up to ``limit`` readable images of ``folder``; broken ones are skipped and counted.

    Each goes through the runtime's one bounded path (``runtime.preprocess``): its pixel count checked from the
    header before it is decoded (``EDGECNN_MAX_IMAGE_PIXELS``), the resize computing no more than the crop needs;
    the file is hashed in blocks, never read whole.
    """
    from ..core.files import sha256_file
    from ..runtime.preprocess import load_image, preprocess

    files = image_files(folder)
    if not files:
        raise InputError(f"calibration folder '{folder}' has no images (.jpg .jpeg .png .bmp .webp)")
    arrays, used, skipped = [], [], []
    for path in files:
        if limit is not None and len(arrays) >= limit:
            break
        try:
            arrays.append(preprocess(load_image(path), card))
            used.append((str(path.relative_to(folder)), sha256_file(path)))
        except Exception as exc:  # any unreadable image is skipped, counted and named in the manifest
            skipped.append(
                (str(path.relative_to(folder)), str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__)
            )
    if not arrays:
        raise InputError(
            f"none of the {len(files)} images in '{folder}' could be read "
            f"(first error: {skipped[0][1]}); pass a folder of valid images"
        )
    return ImageSet(
        np.stack(arrays), str(Path(folder).resolve()), tuple(used), tuple(skipped), preprocessing_record(card)
    )


# scikit-image's colour photographs of things ImageNet has classes for. The first three (a cat, an espresso, a
# rocket) join scikit-learn's two in the default calibration set; the last two (a moped, an astronaut) are kept
# out of it, so that int8 can be judged on photographs calibration never saw (tools/lite0_report.py).
SKIMAGE_CALIBRATION = ("chelsea.png", "coffee.png", "rocket.jpg")
SKIMAGE_HELD_OUT = ("motorcycle_left.png", "astronaut.png")
SKIMAGE_PHOTOS = SKIMAGE_CALIBRATION + SKIMAGE_HELD_OUT


def more_photo_files(names: tuple = SKIMAGE_PHOTOS) -> list[Path]:
    """scikit-image's colour photographs ``names``, found without importing it; [] if it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if not spec or not spec.origin:
        return []
    folder = Path(spec.origin).parent / "data"
    return [folder / name for name in names if (folder / name).is_file()]


def default_photo_files() -> list[Path]:
    """The default calibration photographs: scikit-learn's two and ``SKIMAGE_CALIBRATION`` (the export extra
    installs both packages; without scikit-image, scikit-learn's two alone).

    Two photographs made int8 overfit their colours and textures: calibrated on scikit-learn's two,
    EfficientNet-Lite0's int8 agreed with fp32 on 0.902 of crops of scikit-image's five (none seen); calibrated
    on these five, on 0.973 of crops of the two held out.
    """
    return sample_photo_files() + more_photo_files(SKIMAGE_CALIBRATION)


def sample_photo_files() -> list[Path]:
    """The two photographs scikit-learn ships (china.jpg, flower.jpg), found without importing it:
    ``import sklearn.datasets`` takes 3.4 s here, longer than everything else the default images cost."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    files = (
        sorted(Path(spec.origin).parent.joinpath("datasets", "images").glob("*.jpg")) if spec and spec.origin else []
    )
    if not files:
        raise InputError(
            "the default calibration images come with scikit-learn, which is not installed: "
            "pip install scikit-learn, or pass --calib DIR"
        )
    return files


def sample_photos(count: int, seed: int = 0, size: int = 320, files: list | None = None) -> list[Image.Image]:
    """``count`` varied RGB photographs cut from ``files`` (default: ``default_photo_files()``), deterministic
    for a seed and a set of files."""
    photos = [Image.open(path).convert("RGB") for path in (files or default_photo_files())]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        scale = rng.uniform(0.15, 1.0)  # fraction of the short side: close-ups to whole scenes
        side = int(min(w, h) * scale)
        aspect = rng.uniform(0.75, 1.33)
        cw, ch = min(w, int(side * aspect)), min(h, int(side / aspect))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = photo.crop((x0, y0, x0 + cw, y0 + ch)).resize((size, int(size * ch / cw)), Image.BILINEAR)
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)  # exposure jitter
        out.append(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))
    return out


def load_samples(card: ModelCard, count: int, seed: int = 0) -> ImageSet:
    """The default image set, preprocessed for ``card``."""
    from ..runtime.preprocess import preprocess

    channels = card.input_shape[1] if isinstance(card.input_shape[1], int) else 3
    imgs = sample_photos(count, seed)
    if channels == 1:
        imgs = [im.convert("L") for im in imgs]
    arrays = np.stack([preprocess(im, card) for im in imgs])
    return ImageSet(arrays, f"{DEFAULT_SOURCE}, seed {seed}", preprocessing=preprocessing_record(card))


def split_held_out(arrays, most: int, share: int, keep: int | None = None) -> tuple:
    """The one rule that holds images out of calibration to judge a result on images it was not fitted to.

    The export holds out its parity images (``pipeline.images``: ``keep`` = the calibration count, ``most`` 32,
    ``share`` 3); int8 holds out its selection slice from what it calibrates on (``convert.int8``: ``most`` 48,
    ``share`` 4). With ``keep`` and at least 8 images beyond it: the first ``keep`` calibrate and up to ``most``
    after them are held out. Otherwise, from 16 images, the last ``1/share`` (at most ``most``) are held out; with
    fewer, nothing can be spared and both parts are ``arrays`` itself (callers say so: ``held is calib``).

    Returns:
        ``(calibration, held_out)``, slices of ``arrays``.
    """
    n = len(arrays)
    if keep is not None and n >= keep + 8:
        return arrays[:keep], arrays[keep : keep + most]
    if n < 16:
        return arrays, arrays
    k = min(most, n // share)
    return arrays[: n - k], arrays[n - k :]
