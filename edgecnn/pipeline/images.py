"""The export's images: loaded once (a ``--calib`` folder or the bundled sample photographs), preprocessed for the
model's card, and split by the one held-out rule (``convert.calibration.split_held_out``) into the images int8
calibrates on and the images parity is judged on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.card import ModelCard
from .options import ExportOptions

DEFAULT_SAMPLE_COUNT = 64  # default calibration images (sample photos)
# trained weights: int8's agreement is judged on a held-out quarter (at most 48), and the 97% target tolerates one
# near-tie only from 34 images up; on 16, one image decided between forms (EfficientNet-Lite0: float stems of 3
# and 5 nodes, 0.969 vs 0.945 on 128 crops). 192 images hold out 48, for 3 s more calibration (Lite0 at 224×224).
DEFAULT_TRAINED_SAMPLE_COUNT = 192
DEFAULT_CALIB_LIMIT = 200  # most images read from a --calib folder
PARITY_SAMPLES = 32  # images held out of calibration to judge parity
SAMPLES_WARNING = (
    "int8 calibrated on the default sample photographs (crops of 5 photos bundled with scikit-learn "
    "and scikit-image); calibrate on real images from your deployment domain with --calib DIR"
)


@dataclass(frozen=True)
class ExportImages:
    """What the export runs on: the loaded set (``convert.calibration.ImageSet``) and its two parts."""

    images: object
    calibration: np.ndarray
    parity: np.ndarray

    def record(self) -> dict:
        """The manifest's ``calibration`` block: the source, its files, and how the images were used."""
        record = self.images.record()
        record["used_for_calibration"] = int(len(self.calibration))
        record["held_out_for_parity"] = int(len(self.parity))
        record["parity_on_calibration_images"] = self.parity is self.calibration
        return record


def calibration_count(options: ExportOptions) -> int:
    """How many images calibrate: ``calib_count``, else 200 from a folder, 192 sample photos with trained weights,
    64 with random ones."""
    if options.calib_count:
        return options.calib_count
    if options.calib is not None:
        return DEFAULT_CALIB_LIMIT
    return DEFAULT_TRAINED_SAMPLE_COUNT if options.weights is not None else DEFAULT_SAMPLE_COUNT


def load_images(card: ModelCard, options: ExportOptions, warnings: list) -> ExportImages:
    """The calibration count plus ``PARITY_SAMPLES`` images, preprocessed for ``card`` and split; what was
    skipped or assumed goes to ``warnings``."""
    from ..convert.calibration import load_folder, load_samples, split_held_out

    wanted = calibration_count(options)
    if options.calib is not None:
        images = load_folder(options.calib, card, limit=wanted + PARITY_SAMPLES)
        if images.skipped:
            warnings.append(f"skipped {len(images.skipped)} unreadable image(s) in {options.calib}")
    else:
        images = load_samples(card, wanted + PARITY_SAMPLES, seed=0)
        if options.int8 is not None:
            warnings.append(SAMPLES_WARNING)
    calibration, parity = split_held_out(images.arrays, most=PARITY_SAMPLES, share=3, keep=wanted)
    return ExportImages(images, calibration, parity)
