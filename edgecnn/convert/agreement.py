"""How close an int8 (or any) artifact's outputs are to fp32's, and running a file over many inputs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..runtime.session import iter_batched

# ------------------------------------------------------------------------------------------------ agreement


@dataclass(frozen=True)
class Agreement:
    """How closely an int8 model's outputs follow fp32's on the same images."""

    task: str
    samples: int
    sqnr_db: float  # signal-to-quantization-noise ratio of the outputs
    cosine: float
    top1: float | None = None  # classification: share of images with the same top-1 class
    pixel: float | None = None  # segmentation: share of pixels with the same class
    miou: float | None = None  # segmentation: mean IoU of the int8 masks against the fp32 masks
    kl: float = 0.0  # mean KL(softmax fp32 ‖ softmax int8) over images (pixels): how far the decisions moved

    def meets(self, target: dict) -> bool:
        return all(getattr(self, key) is not None and getattr(self, key) >= value for key, value in target.items())

    def score(self) -> tuple:
        """Sort key: task agreement first, then the smaller KL divergence of the class probabilities.

        On a few dozen images the methods often tie on agreement; KL of the softmax, not the logits' SQNR, is
        what predicts the near-ties that flip (logit SQNR is dominated by the largest logits).
        """
        primary = self.top1 if self.task != "segmentation" else min(self.pixel, self.miou)
        return (round(primary, 6), -self.kl)

    def summary(self) -> str:
        core = (
            f"top-1 {self.top1:.3f}" if self.task != "segmentation" else f"pixel {self.pixel:.4f} mIoU {self.miou:.4f}"
        )
        return f"{core}, SQNR {self.sqnr_db:.1f} dB on {self.samples} images"

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items() if v is not None}


def agreement(reference: np.ndarray, outputs: np.ndarray, task: str) -> Agreement:
    """Compare int8 ``outputs`` with fp32 ``reference`` (N×classes, or N×classes×H×W for segmentation)."""
    ref = np.asarray(reference, np.float64)
    out = np.nan_to_num(np.asarray(outputs, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    n = len(ref)
    flat_r, flat_o = ref.reshape(n, -1), out.reshape(n, -1)
    sqnr = _sqnr(float((flat_r**2).sum()), float(((flat_r - flat_o) ** 2).sum()))
    a = flat_r - flat_r.mean(1, keepdims=True)
    b = flat_o - flat_o.mean(1, keepdims=True)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = float(np.mean(np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 1.0)))
    kl = _kl(ref, out)
    if task == "segmentation":
        rm, om = ref.argmax(1), out.argmax(1)
        ious = []
        for c in range(ref.shape[1]):
            union = np.logical_or(rm == c, om == c).sum()
            if union:
                ious.append(np.logical_and(rm == c, om == c).sum() / union)
        return Agreement(
            task, n, sqnr, cosine, pixel=float((rm == om).mean()), miou=float(np.mean(ious)) if ious else 1.0, kl=kl
        )
    return Agreement(task, n, sqnr, cosine, top1=float((ref.argmax(1) == out.argmax(1)).mean()), kl=kl)


def _kl(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean KL(softmax(ref) ‖ softmax(out)) over the class axis (1), averaged over images and pixels."""
    lr = ref - ref.max(1, keepdims=True)
    lr = lr - np.log(np.exp(lr).sum(1, keepdims=True))
    lo = out - out.max(1, keepdims=True)
    lo = lo - np.log(np.exp(lo).sum(1, keepdims=True))
    return float(np.maximum((np.exp(lr) * (lr - lo)).sum(1), 0.0).mean())


def _sqnr(signal: float, noise: float) -> float:
    if noise <= 0:
        return 99.0
    if signal <= 0:
        return -99.0
    return float(min(99.0, 10 * math.log10(signal / noise)))


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
        _iter_outputs(path, arrays, input_name=input_name, batch=batch, outputs=outputs, level=level, threads=threads)
    )
    if not chunks:
        raise ValueError("run_model needs at least one input row")
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def _iter_outputs(
    path, arrays, *, input_name="input", batch=None, outputs=None, level="all", threads=None, step: int | None = None
):
    """Yield the outputs of each chunk of ``arrays`` (one chunk at a time, so memory stays that of a chunk)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in session.get_outputs()]
    # the one batched runner: a fixed-batch graph gets pieces of its batch (the last padded), others of ``step``
    yield from iter_batched(session, arrays, input_name=input_name, outputs=names, chunk=batch or step or 8)
