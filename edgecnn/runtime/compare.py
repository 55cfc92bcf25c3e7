"""Numerical parity between an exported artifact and its PyTorch source, with per-precision tolerances.

A comparison is plain data (``ParityReport``): error figures, task agreement, the tolerances it was
judged by, and the reasons it failed. Only numpy is needed here. The measures are public functions
(``cosine_similarity``, ``top1_agreement``, ``pixel_agreement``, ``mean_iou``, ``sqnr_db``, ``kl_divergence``):
the int8 step's agreement with fp32 (``convert.int8.agreement``) is computed with them, in the same words.

How each precision is judged:

* fp32 and fp16, against PyTorch (``exact`` given): the artifact's largest deviation from the model computed in
  float64, on a few inputs, must be within ``torch_multiple`` (8) × PyTorch's own largest deviation from it at
  that precision, plus a floor of 8 unit roundoffs of the largest output (4–8 units in its last place, so that a
  network whose own error happens to be zero is not held to zero). PyTorch's own error is the largest over runs
  that round differently (``convert.reference.OWN_RUNS``: in fp32, NCHW and channels-last × batches of 8 and 1;
  in fp16, one float16 run). A fixed relative error measured the network's conditioning, not the exporter: deep
  or badly scaled networks lose digits in PyTorch itself (ResNet-152 at 224², fp32: 9.5e-5 of its largest logit;
  MobileNetV3-Large at 64² with BatchNorm statistics from noise: 3.5e-4), and a correct export loses as many, no
  more. Measured: correct artifacts at 0.36–1.35× PyTorch's own error in fp32 and 0.38–1.45× in fp16 (12 zoo models
  at 64², 7 sets of 8 photographs each), at most 2.6× on the noise-statistics MobileNetV3-Large (56 sets); one
  mid-network convolution's weights × 1.001 at ≥ 40× (≥ 100× for the classifiers; 22× on that MobileNetV3).
  Then cosine ≥ 0.99999 (fp16: 0.995) — or, where PyTorch's own outputs fall further short of float64's (a
  cosine shortfall 1 − c), ≥ 1 − 8·(1 − c): a correct file of that noise MobileNetV3 at 224² came within 5e-6 of
  the fixed threshold — and top-1 identical on every *decisive* sample (one whose top-1/top-2
  margin exceeds twice the observed max error; near-ties may legitimately swap; fp16: ≥ 99%).
* fp32 and fp16 against another artifact's outputs (no float64 reference: the bundle self-test, embedded
  preprocessing, mobile, other providers): relative max error (max |ref - out| / max |ref|) ≤ 1e-4 (fp16:
  5e-2), with the same cosine and top-1 checks.
* int8 is judged at task level, since single logits move by design: cosine ≥ 0.98, top-1 agreement ≥ 90%
  on the decisive samples (margin > twice the sample's RMS error), top-5 containment ≥ 97%; for
  segmentation pixel agreement ≥ 97% and mean IoU ≥ 0.90. Raw top-1 agreement is reported as well.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# precision -> thresholds. Segmentation uses the pixel/miou entries, classification the top-k ones.
# max_rel judges only comparisons without a float64 reference; torch_multiple only those with one.
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {
        "max_rel": 1e-4,
        "torch_multiple": 8.0,
        "cosine": 0.99999,
        "top1": 1.0,
        "top5": 1.0,
        "pixel": 0.999,
        "miou": 0.995,
    },
    "fp16": {
        "max_rel": 5e-2,
        "torch_multiple": 8.0,
        "cosine": 0.995,
        "top1": 0.99,
        "top5": 0.99,
        "pixel": 0.99,
        "miou": 0.97,
    },
    "int8": {
        "max_rel": float("inf"),
        "torch_multiple": float("inf"),
        "cosine": 0.98,
        "top1": 0.90,
        "top5": 0.97,
        "pixel": 0.97,
        "miou": 0.90,
    },
}
UNIT_ROUNDOFF = {"fp32": 2.0**-24, "fp16": 2.0**-11}  # half an ulp at 1.0: what one rounding can cost
FLOOR_UNITS = 8  # the float64 check's floor, in unit roundoffs of the largest output (4–8 units in its last place)


@dataclass(frozen=True)
class ExactReference:
    """The yardstick of fp32/fp16 parity against PyTorch: on the first ``len(exact)`` inputs of a comparison, the
    model's outputs computed in float64 (``exact``), and PyTorch's own at the artifact's precision (``torch``: one
    array, or a tuple of runs whose kernels round differently; PyTorch's error is the largest of theirs)."""

    exact: np.ndarray
    torch: np.ndarray | tuple


@dataclass(frozen=True)
class ParityReport:
    """The outcome of comparing ``out`` (artifact) with ``ref`` (PyTorch) on the same inputs."""

    passed: bool
    precision: str
    task: str
    samples: int
    max_abs: float
    max_rel: float
    mean_abs: float
    cosine: float
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    decisive_top1: float | None = None
    decisive_samples: int | None = None
    pixel_agreement: float | None = None
    mean_iou: float | None = None
    tolerances: dict = field(default_factory=dict)
    failures: tuple = ()
    nonfinite: int = 0
    judged: bool = True  # False: figures are reported but the verdict is not binding (see ``compare``)
    note: str = ""
    exact_max_abs: float | None = None  # the artifact's max deviation from the float64 outputs
    torch_max_abs: float | None = None  # PyTorch's own, at the artifact's precision, on the same inputs
    error_bound: float | None = None  # what exact_max_abs was held to: torch_multiple × torch_max_abs + floor
    exact_samples: int | None = None  # inputs the float64 check ran on
    cosine_bound: float | None = None  # what cosine was held to (lower than the fixed one only for a network
    # whose own PyTorch outputs stray further from float64 than that, see ``_cosine_bound``)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failures"] = list(self.failures)
        return d

    def summary(self) -> str:
        core = f"max_abs {self.max_abs:.2e} max_rel {self.max_rel:.2e} cos {self.cosine:.6f}"
        if self.exact_max_abs is not None:
            core += f" vs-float64 {self.exact_max_abs:.2e} (PyTorch {self.torch_max_abs:.2e})"
        if self.task == "segmentation":
            core += f" pixel {self.pixel_agreement:.4f} mIoU {self.mean_iou:.4f}"
        else:
            core += f" top1 {self.top1_agreement:.3f} top5 {self.top5_agreement:.3f}"
        verdict = ("PASS " if self.passed else "FAIL ") if self.judged else "n/a  "
        return verdict + core


def compare(
    ref: np.ndarray,
    out: np.ndarray,
    *,
    task: str,
    precision: str,
    tolerances: dict[str, float] | None = None,
    random_weights: bool = False,
    exact: ExactReference | None = None,
) -> ParityReport:
    """Compare artifact outputs with reference outputs (same inputs, same order).

    Args:
        ref: PyTorch outputs, N×classes (classification) or N×classes×H×W (segmentation).
        out: the artifact's outputs, same shape.
        task: ``"classification"`` or ``"segmentation"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``: picks the tolerances.
        tolerances: overrides of individual thresholds.
        random_weights: the model is untrained. fp32/fp16 are still judged (their errors do not depend on
            training), but an int8 verdict is not: an untrained network's class scores are near-ties, so
            task-level agreement says nothing about how the quantized *trained* model will do. The figures
            are reported with ``judged=False``.
        exact: float64 outputs and PyTorch's own at this precision on the first inputs: fp32/fp16 are then
            judged against PyTorch's own error instead of a fixed relative error (see the module docstring).
    """
    tol = {**TOLERANCES[precision], **(tolerances or {})}
    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if ref.shape != out.shape:
        return _shape_mismatch(ref, out, precision, task, tol)
    nonfinite = int((~np.isfinite(out)).sum())
    safe_out = np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
    diff = np.abs(ref - safe_out)
    failures = [f"{nonfinite} NaN/Inf values in the artifact's output"] if nonfinite else []
    errors = _errors(ref, safe_out, diff, exact, precision, tol, failures)
    if task == "segmentation":
        fields = _segmentation(ref, safe_out, tol, failures)
    else:
        fields = _classification(ref, safe_out, diff, precision, tol, failures)
    judged = not (random_weights and precision == "int8")
    note = "" if judged else _NOT_JUDGED
    return ParityReport(
        not failures or not judged and not nonfinite,
        precision,
        task,
        int(len(ref)),
        tolerances=tol,
        failures=tuple(failures),
        nonfinite=nonfinite,
        judged=judged,
        note=note,
        **errors,
        **fields,
    )


_NOT_JUDGED = (
    "random weights: int8 agreement of an untrained model is not a verdict; "
    "export trained weights (--weights) to judge it"
)


def _shape_mismatch(ref: np.ndarray, out: np.ndarray, precision: str, task: str, tol: dict) -> ParityReport:
    return ParityReport(
        False,
        precision,
        task,
        int(ref.shape[0]) if ref.ndim else 0,
        float("inf"),
        float("inf"),
        float("inf"),
        0.0,
        tolerances=tol,
        failures=(f"output shape {list(out.shape)} differs from the reference {list(ref.shape)}",),
    )


def _errors(
    ref: np.ndarray,
    out: np.ndarray,
    diff: np.ndarray,
    exact: ExactReference | None,
    precision: str,
    tol: dict,
    failures: list,
) -> dict:
    """Error figures (absolute, relative, cosine, and against float64 where given); failures appended."""
    scale = max(float(np.abs(ref).max()), 1e-12)
    max_abs, mean_abs = float(diff.max()), float(diff.mean())
    max_rel = max_abs / scale
    cosine = cosine_similarity(ref.reshape(len(ref), -1), out.reshape(len(ref), -1))
    yardstick = _against_float64(exact, out, precision, tol) if precision in UNIT_ROUNDOFF else {}
    torch_cosine = yardstick.pop("torch_cosine", None)
    if yardstick:
        if yardstick["exact_max_abs"] > yardstick["error_bound"]:
            failures.append(_float64_failure(precision, tol, **yardstick))
    elif max_rel > tol["max_rel"]:
        failures.append(f"max relative error {max_rel:.2e} > {tol['max_rel']:.0e}")
    bound = _cosine_bound(torch_cosine, tol)
    if cosine < bound:
        failures.append(f"cosine similarity {cosine:.6f} < {bound:.6g}")
    return dict(max_abs=max_abs, max_rel=max_rel, mean_abs=mean_abs, cosine=cosine, cosine_bound=bound, **yardstick)


def _cosine_bound(torch_cosine: float | None, tol: dict) -> float:
    """The fixed cosine threshold, unless PyTorch's own outputs at this precision are further from float64 than
    it allows: then the same multiple of PyTorch's own shortfall (1 − its cosine with float64) as the error bound
    uses. A badly conditioned network (BatchNorm statistics from noise) reached cosine 0.9999949 against
    PyTorch fp32 with a correct file; a file that is wrong still fails the float64 error bound first."""
    if torch_cosine is None or "torch_multiple" not in tol:
        return tol["cosine"]
    return min(tol["cosine"], 1.0 - tol["torch_multiple"] * (1.0 - torch_cosine))


def _against_float64(exact: ExactReference | None, out: np.ndarray, precision: str, tol: dict) -> dict:
    """The artifact's and PyTorch's largest deviations from the float64 outputs, and the bound the first is held
    to; empty (the fixed relative rule applies) without a usable reference: none given, or PyTorch's own outputs
    not finite (an fp16 overflow in PyTorch leaves nothing to measure against)."""
    if exact is None:
        return {}
    truth = np.asarray(exact.exact, dtype=np.float64)
    runs = [
        np.asarray(r, dtype=np.float64)
        for r in (exact.torch if isinstance(exact.torch, (tuple, list)) else (exact.torch,))
    ]
    n = len(truth)
    if not runs or any(r.shape != truth.shape for r in runs) or truth.shape[1:] != out.shape[1:] or n > len(out):
        shapes = [list(r.shape) for r in runs]
        raise ValueError(
            f"float64 reference of shape {list(truth.shape)} (PyTorch's runs {shapes}) does not fit "
            f"outputs of shape {list(out.shape)}"
        )
    if n == 0 or not all(np.isfinite(a).all() for a in (truth, *runs)):
        return {}
    own = max(float(np.abs(r - truth).max()) for r in runs)
    floor = FLOOR_UNITS * UNIT_ROUNDOFF[precision] * float(np.abs(truth).max())
    flat = truth.reshape(n, -1)
    return dict(
        exact_max_abs=float(np.abs(out[:n] - truth).max()),
        torch_max_abs=own,
        error_bound=tol["torch_multiple"] * own + floor,
        exact_samples=int(n),
        torch_cosine=min(cosine_similarity(r.reshape(n, -1), flat) for r in runs),
    )


def _float64_failure(
    precision: str, tol: dict, *, exact_max_abs: float, torch_max_abs: float, error_bound: float, exact_samples: int
) -> str:
    floor = error_bound - tol["torch_multiple"] * torch_max_abs
    return (
        f"max error against float64 {exact_max_abs:.2e} > {error_bound:.2e} "
        f"({tol['torch_multiple']:g} × PyTorch {precision}'s own {torch_max_abs:.2e} + floor {floor:.1e}; "
        f"{exact_samples} inputs)"
    )


def _segmentation(ref: np.ndarray, out: np.ndarray, tol: dict, failures: list) -> dict:
    """Pixel agreement and mean IoU of the argmax masks; failures appended."""
    r_mask, o_mask = ref.argmax(1), out.argmax(1)
    pixel = float((r_mask == o_mask).mean())
    miou = mean_iou(r_mask, o_mask, ref.shape[1])
    if pixel < tol["pixel"]:
        failures.append(f"pixel agreement {pixel:.4f} < {tol['pixel']}")
    if miou < tol["miou"]:
        failures.append(f"mean IoU {miou:.4f} < {tol['miou']}")
    return dict(pixel_agreement=pixel, mean_iou=miou)


def _classification(
    ref: np.ndarray, out: np.ndarray, diff: np.ndarray, precision: str, tol: dict, failures: list
) -> dict:
    """Top-1/top-5 agreement, and top-1 on the decisive samples; failures appended."""
    r_top = np.argsort(-ref, axis=1)
    o_top1 = out.argmax(1)
    top1 = float((r_top[:, 0] == o_top1).mean())
    k = min(5, ref.shape[1])
    o_top5 = np.argsort(-out, axis=1)[:, :k]
    top5 = float(np.mean([r_top[i, 0] in o_top5[i] for i in range(len(ref))]))
    # A sample is decisive when its top-1/top-2 margin clearly exceeds the artifact's error on it (twice the
    # max error for fp32/fp16, twice the RMS error for int8): only those must keep their top-1. A near-tie
    # may swap under any rounding; a trained model's outputs are decisive almost everywhere, an untrained
    # model's rarely are.
    err = diff.max(axis=1) if precision in ("fp32", "fp16") else np.sqrt((diff**2).mean(axis=1))
    if ref.shape[1] > 1:
        sorted_ref = np.take_along_axis(ref, r_top[:, :2], axis=1)
        decisive = (sorted_ref[:, 0] - sorted_ref[:, 1]) > 2 * err
    else:
        decisive = np.ones(len(ref), bool)
    dec_top1 = float((r_top[decisive, 0] == o_top1[decisive]).mean()) if decisive.any() else None
    if dec_top1 is not None and dec_top1 < tol["top1"]:
        failures.append(
            f"top-1 agreement {dec_top1:.3f} < {tol['top1']} on the {int(decisive.sum())} samples "
            "whose top-1 is decisive"
        )
    if precision == "int8" and top5 < tol["top5"]:
        failures.append(f"top-5 agreement {top5:.3f} < {tol['top5']}")
    return dict(top1_agreement=top1, top5_agreement=top5, decisive_top1=dec_top1, decisive_samples=int(decisive.sum()))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of their output vectors (centred, so offsets count)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    both_flat = den == 0
    cos = np.where(both_flat, 1.0, num / np.where(both_flat, 1.0, den))
    return float(cos.mean())


def mean_iou(ref_mask: np.ndarray, out_mask: np.ndarray, num_classes: int) -> float:
    """Mean IoU over the classes present in either mask."""
    ious = []
    for c in range(num_classes):
        r, o = ref_mask == c, out_mask == c
        union = np.logical_or(r, o).sum()
        if union:
            ious.append(np.logical_and(r, o).sum() / union)
    return float(np.mean(ious)) if ious else 1.0


def top1_agreement(ref: np.ndarray, out: np.ndarray) -> float:
    """Share of samples whose top-1 class (axis 1) is the same in ``ref`` and ``out``."""
    return float((ref.argmax(1) == out.argmax(1)).mean())


def pixel_agreement(ref: np.ndarray, out: np.ndarray) -> float:
    """Share of pixels whose class (the argmax over axis 1 of N×classes×H×W outputs) is the same."""
    return float((ref.argmax(1) == out.argmax(1)).mean())


def sqnr_db(signal: float, noise: float) -> float:
    """Signal-to-noise ratio in dB from summed powers, clipped to ±99 (99: no noise at all)."""
    if noise <= 0:
        return 99.0
    if signal <= 0:
        return -99.0
    return float(min(99.0, 10 * math.log10(signal / noise)))


def kl_divergence(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean KL(softmax(ref) ‖ softmax(out)) over the class axis (1), averaged over samples and pixels."""
    lr = ref - ref.max(1, keepdims=True)
    lr = lr - np.log(np.exp(lr).sum(1, keepdims=True))
    lo = out - out.max(1, keepdims=True)
    lo = lo - np.log(np.exp(lo).sum(1, keepdims=True))
    return float(np.maximum((np.exp(lr) * (lr - lo)).sum(1), 0.0).mean())
