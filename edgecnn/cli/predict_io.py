"""What ``edgecnn predict`` does around the Predictor: expanding inputs, reading the preprocessing options,
writing masks. Torch-free (numpy, Pillow)."""

from __future__ import annotations

from pathlib import Path


def preprocess_overrides(mean: str | None, std: str | None, crop: str | None, labels: Path | None) -> dict:
    """``--mean/--std/--crop/--labels`` as Predictor keywords (only those given); for .onnx files without a card."""
    from ..core.errors import InputError
    from ..core.sizes import parse_hw

    kwargs: dict = {}
    for flag, text, key in (("--mean", mean, "mean"), ("--std", std, "std")):
        if text is None:
            continue
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise InputError(f"{flag} is numbers separated by commas (e.g. 0.485,0.456,0.406), got {text!r}") from None
        if len(values) not in (1, 3) or (key == "std" and min(values) <= 0):
            raise InputError(f"{flag} takes 1 or 3 {'positive ' if key == 'std' else ''}numbers, got {text!r}")
        kwargs[key] = values
    if crop is not None:
        kwargs["crop"] = parse_hw(crop, "--crop")
    if labels is not None:
        try:
            names = [line.strip() for line in Path(labels).read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--labels {labels}: cannot read it ({exc})") from None
        if not names:
            raise InputError(f"--labels {labels}: no class names in this file (one per line)")
        kwargs["labels"] = names
    return kwargs


def expand_inputs(inputs: list[str]) -> tuple[list, bool]:
    """Files named directly, plus the images found in folders; whether any folder was given."""
    from pathlib import Path

    from ..core.errors import InputError
    from ..runtime.preprocess import IMAGE_SUFFIXES, list_images

    files, any_folder = [], False
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise InputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files.extend(found)
            any_folder = True
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files, any_folder


def mask_plan(files: list, mask_dir: Path, force: bool) -> dict:
    """Where each input's mask goes, checked before any is written: ``{input: mask path}``.

    Refused (nothing written): ``mask_dir`` being a file, a mask that would land on an input image (never, even
    with ``--force``), and a mask over an existing file without ``--force``.
    """
    from ..core.errors import ArtifactError

    if mask_dir.exists() and not mask_dir.is_dir():
        raise ArtifactError(f"--save-masks {mask_dir}: this is a file; pass a folder for the masks")
    inputs = {Path(f).resolve() for f in files}
    plan, used, existing = {}, set(), []
    for path in files:
        stem, n = path.stem, 1
        while stem + ".png" in used:  # two inputs with the same name from different folders
            stem, n = f"{path.stem}_{n}", n + 1
        used.add(stem + ".png")
        dest = mask_dir / (stem + ".png")
        if dest.resolve() in inputs:
            raise ArtifactError(
                f"--save-masks {mask_dir}: the mask {dest.name} would replace an input image; pass another folder"
            )
        if dest.exists():
            existing.append(dest.name)
        plan[path] = dest
    if existing and not force:
        raise ArtifactError(
            f"--save-masks {mask_dir}: {len(existing)} file(s) there already have a mask's name "
            f"({', '.join(existing[:3])}); pass --force to replace them, or another folder"
        )
    return plan


def mask_entry(path, mask, labels, dest) -> dict:
    """One segmentation result: class fractions, and the mask written as a palette PNG to ``dest`` (if any)."""
    import numpy as np

    values, counts = np.unique(mask, return_counts=True)
    name_of = lambda v: labels[v] if labels and v < len(labels) else str(v)  # noqa: E731
    entry = {
        "file": str(path),
        "mask_shape": list(mask.shape),
        "class_fractions": {name_of(int(v)): float(c) / mask.size for v, c in zip(values, counts)},
        "mask_file": None,
    }
    if dest is not None:
        entry["mask_file"] = str(_save_mask(mask, dest))
    return entry


def _save_mask(mask, dest):
    """Write a class mask as a PNG (palette for ≤ 256 classes, 16-bit otherwise), atomically."""
    import os
    import tempfile

    import numpy as np
    from PIL import Image

    from ..core.errors import ArtifactError

    if mask.dtype == np.uint8:
        image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
        image.putpalette(_palette())
    else:
        image = Image.fromarray(mask.astype(np.uint16))
    fd, tmp = tempfile.mkstemp(suffix=".png.tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG")
        os.replace(tmp, dest)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ArtifactError(f"{dest}: cannot write mask ({exc})") from None
    return dest


def _palette() -> list[int]:
    """The PASCAL VOC colour map: class 0 black, then well-separated colours (bit-interleaved index)."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette.extend((r, g, b))
    return palette
