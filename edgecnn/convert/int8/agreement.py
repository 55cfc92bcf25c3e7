"""How close an int8 (or any) artifact's outputs are to fp32's, and running a file over many inputs.

The measures are ``runtime.compare``'s (``top1_agreement``, ``pixel_agreement``, ``mean_iou``,
``cosine_similarity``, ``sqnr_db``, ``kl_divergence``) and the record uses their names, as ``ParityReport`` does;
``Agreement`` only adds what choosing between int8 forms needs (a target to meet, a sort key).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...runtime.compare import (
    cosine_similarity,
    kl_divergence,
    mean_iou,
    pixel_agreement,
    sqnr_db,
    top1_agreement,
)
from ...runtime.runner import open_runner
from ...runtime.session import iter_batched

# the names the int8 record used before it took runtime.compare's: still accepted in targets and read back
OLD_NAMES = {"top1": "top1_agreement", "pixel": "pixel_agreement", "miou": "mean_iou"}


@dataclass(frozen=True)
class Agreement:
    """How closely an int8 model's outputs follow fp32's on the same images."""

    task: str
    samples: int
    sqnr_db: float  # signal-to-quantization-noise ratio of the outputs
    cosine: float
    top1_agreement: float | None = None  # classification: share of images with the same top-1 class
    pixel_agreement: float | None = None  # segmentation: share of pixels with the same class
    mean_iou: float | None = None  # segmentation: mean IoU of the int8 masks against the fp32 masks
    kl: float = 0.0  # mean KL(softmax fp32 ‖ softmax int8) over images (pixels): how far the decisions moved

    def meets(self, target: dict) -> bool:
        return all(getattr(self, key) is not None and getattr(self, key) >= value for key, value in target.items())

    def score(self) -> tuple:
        """Sort key: task agreement first, then the smaller KL divergence of the class probabilities.

        On a few dozen images the methods often tie on agreement; KL of the softmax, not the logits' SQNR, is
        what predicts the near-ties that flip (logit SQNR is dominated by the largest logits).
        """
        seg = self.task == "segmentation"
        primary = min(self.pixel_agreement, self.mean_iou) if seg else self.top1_agreement
        return (round(primary, 6), -self.kl)

    def summary(self) -> str:
        if self.task == "segmentation":
            core = f"pixel {self.pixel_agreement:.4f} mIoU {self.mean_iou:.4f}"
        else:
            core = f"top-1 {self.top1_agreement:.3f}"
        return f"{core}, SQNR {self.sqnr_db:.1f} dB on {self.samples} images"

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}


def target_names(target: dict) -> dict:
    """``target`` with the record's old names (``top1``, ``pixel``, ``miou``) spelled as ``Agreement``'s."""
    return {OLD_NAMES.get(k, k): v for k, v in target.items()}


def agreement(reference: np.ndarray, outputs: np.ndarray, task: str) -> Agreement:
    """Compare int8 ``outputs`` with fp32 ``reference`` (N×classes, or N×classes×H×W for segmentation)."""
    ref = np.asarray(reference, np.float64)
    out = np.nan_to_num(np.asarray(outputs, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n = len(ref)
    flat_r, flat_o = ref.reshape(n, -1), out.reshape(n, -1)
    sqnr = sqnr_db(float((flat_r**2).sum()), float(((flat_r - flat_o) ** 2).sum()))
    common = dict(sqnr_db=sqnr, cosine=cosine_similarity(flat_r, flat_o), kl=kl_divergence(ref, out))
    if task == "segmentation":
        miou = mean_iou(ref.argmax(1), out.argmax(1), ref.shape[1])
        return Agreement(task, n, pixel_agreement=pixel_agreement(ref, out), mean_iou=miou, **common)
    return Agreement(task, n, top1_agreement=top1_agreement(ref, out), **common)


def run_model(
    path: str | Path,
    arrays: np.ndarray,
    *,
    input_name: str = "input",
    batch: int | None = None,
    outputs: list | None = None,
    level: str = "all",
    threads: int | None = None,
) -> list[np.ndarray]:
    """Outputs of ``path`` on ``arrays`` (CPU provider), in chunks (of the graph's fixed batch, if it has one)."""
    chunks = list(
        iter_outputs(path, arrays, input_name=input_name, batch=batch, outputs=outputs, level=level, threads=threads)
    )
    if not chunks:
        raise ValueError("run_model needs at least one input row")
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def iter_outputs(
    path, arrays, *, input_name="input", batch=None, outputs=None, level="all", threads=None, step: int | None = None
):
    """Yield the outputs of each chunk of ``arrays`` (one chunk at a time, so memory stays that of a chunk)."""
    runner = open_runner(Path(path), providers="cpu", graph_opt=level, threads=threads)
    names = outputs or [o.name for o in runner.outputs]
    # the one batched runner: a fixed-batch graph gets pieces of its batch (the last padded), others of ``step``
    yield from iter_batched(runner.session, arrays, input_name=input_name, outputs=names, chunk=batch or step or 8)
