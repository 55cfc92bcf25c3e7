"""The PyTorch reference an artifact is compared with: its outputs (``torch_outputs``, shared by the export's
checks and ``validate``), and for ``validate`` its model rebuilt with the weights the artifact's card names (or
the ones given), refused in one line when those weights cannot be found.

fp32 and fp16 parity are judged against the error PyTorch itself makes (``runtime.compare``): besides its fp32
outputs on every input, the model runs on the first ``EXACT_IMAGES`` inputs in float64 (the yardstick's truth), in
the other float32 forms of ``OWN_RUNS`` and, for an fp16 artifact, in float16. Cost on VGG16 at 224² (2 shared
cores, torch 2.13 CPU): float64 on 8 images ~4 s, the three other float32 runs ~4.5 s, the float16 run ~1.8 s —
+9.5–12.8 s on the 4–6 s fp32 reference of 32 images, about an eighth of VGG16's 84 s export. The weights go to
float64 in place and back (exactly), so the float32 copy is not held beside them.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.card import ModelCard
from ..core.errors import ArtifactError, CheckpointError, UnknownModelError
from ..core.paths import is_checkpoint_path
from ..runtime.compare import ExactReference

EXACT_IMAGES = 8  # inputs the float64 (and float16) runs take: 8×1000 logits, or millions of pixels, to take a max over
_CHUNK = 8  # images per call of the fp32 reference run
# PyTorch's own error is the largest over runs whose kernels round differently. In float32, memory layout × batch size:
# one run's error is a single draw from a heavy-tailed spread on a badly conditioned network (MobileNetV3-Large with
# noise BatchNorm statistics, 56 sets of 8 photographs: a correct artifact's error reached 9.2× one run's, 2.6× the
# largest of these four), while a weight off by 1e-3 stayed ≥ 22× the largest of the four. In float16 every form
# rounds alike (the same max error to 3 digits on ResNet18, MobileNetV3-Large, EfficientNet-Lite0): one run.
OWN_RUNS = {"fp32": (("nchw", 8), ("nchw", 1), ("nhwc", 8), ("nhwc", 1)), "fp16": (("nhwc", 8),)}
EXACT_RUN = (
    "nhwc",
    EXACT_IMAGES,
)  # float64: any layout is exact to ~1e-15; channels-last is faster (VGG16 4.0 vs 4.7 s)


@dataclass(frozen=True)
class TorchOutputs:
    """PyTorch's outputs on a set of inputs; each run is a list with one array per model output.

    Attributes:
        fp32: the model as it is (float32), on every input.
        exact: in float64, on the first ``EXACT_IMAGES`` inputs; ``None`` when the model cannot run in float64.
        own: PyTorch's own runs on those inputs at each precision ("fp32", and "fp16" when asked for), one per
            ``OWN_RUNS[precision]`` form: the yardstick of fp32/fp16 parity.
        notes: why a run is missing, for the user.
    """

    fp32: list
    exact: list | None = None
    own: dict = field(default_factory=dict)
    notes: tuple = ()

    def yardstick(self, precision: str, output: int = 0) -> ExactReference | None:
        """The float64 reference an fp32/fp16 artifact's output is judged by (``None``: the fixed relative rule)."""
        runs = self.own.get(precision)
        if self.exact is None or not runs:
            return None
        return ExactReference(self.exact[output], tuple(run[output] for run in runs))


def torch_outputs(model, arrays: np.ndarray, *, half: bool = False, nhwc: bool = False) -> TorchOutputs:
    """Run ``model`` (eval mode) on ``arrays`` (N×C×H×W float32): fp32 on all, and on the first ``EXACT_IMAGES`` in
    float64 and in each ``OWN_RUNS`` form in float32 (and float16, with ``half``). The model's weights are left
    exactly as they were (cost: see the module docstring).

    Args:
        nhwc: run the fp32 reference in channels-last layout (faster in eager mode; the export's choice).
    """
    import torch

    layout = "nhwc" if nhwc else "nchw"
    fp32 = _forward(model, arrays, layout, _CHUNK, torch.float32)
    head = np.ascontiguousarray(arrays[:EXACT_IMAGES])
    exact, notes = _runs_in(model, head, torch.float64, (EXACT_RUN,))
    own = {}
    if exact is not None:
        reused = [a[: len(head)] for a in fp32]  # the reference run is one of the forms
        own["fp32"] = [
            reused if form == (layout, _CHUNK) else _forward(model, head, *form, torch.float32)
            for form in OWN_RUNS["fp32"]
        ]
        if half:
            own["fp16"], half_notes = _runs_in(model, head, torch.float16, OWN_RUNS["fp16"])
            notes += half_notes
    return TorchOutputs(fp32, exact[0] if exact else None, {k: v for k, v in own.items() if v}, notes)


def _forward(model, arrays: np.ndarray, layout: str, batch: int, dtype) -> list:
    """The model's outputs on ``arrays`` in ``layout`` (``nchw``/``nhwc``), ``batch`` images a call, inputs cast to
    ``dtype``: one array per output (a model may return a tensor or a tuple)."""
    import torch

    from .onnx_export import channels_last, to_channels_last

    nhwc = layout == "nhwc"
    # no_grad, not inference_mode: tensors made under inference_mode (the layout changes of the weights here)
    # cannot be used by the export's tracing afterwards
    with torch.no_grad(), channels_last(model) if nhwc else contextlib.nullcontext():
        chunks = []
        for i in range(0, len(arrays), batch):
            part = np.ascontiguousarray(arrays[i : i + batch])
            out = model((to_channels_last(part) if nhwc else torch.from_numpy(part)).to(dtype))
            chunks.append([o.contiguous().numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))])
    return [np.concatenate(parts) for parts in zip(*chunks)]


def _runs_in(model, arrays: np.ndarray, dtype, forms) -> tuple[list | None, tuple]:
    """One run per (layout, batch) form with the model's weights and inputs in ``dtype``; (None, note) if PyTorch
    cannot run the model in that dtype."""
    import torch

    try:
        with _weights_in(model, dtype):
            return [_forward(model, arrays, layout, batch, dtype) for layout, batch in forms], ()
    except (RuntimeError, TypeError, NotImplementedError) as exc:  # an op without a kernel for this dtype
        name = str(dtype).replace("torch.", "")
        return None, (
            f"PyTorch cannot run this model in {name} here ({str(exc).splitlines()[0][:120]}): "
            f"{'fp32 and fp16' if dtype == torch.float64 else 'fp16'} parity is judged by the fixed "
            "relative tolerance",
        )


@contextlib.contextmanager
def _weights_in(model, dtype):
    """The model's floating-point parameters and buffers in ``dtype`` for the duration, then exactly as before:
    widening to float64 converts in place and back (float64 holds every float32/float16/bfloat16 value, so the
    round trip is exact, and the float32 copy is not held beside it); narrowing keeps the originals aside.
    Restored by name: a layout change inside may have replaced a buffer's tensor."""
    import torch

    def floating() -> dict:
        return {
            n: t for n, t in itertools.chain(model.named_parameters(), model.named_buffers()) if t.is_floating_point()
        }

    widening = dtype == torch.float64
    kept = {n: t.dtype if widening else t.data for n, t in floating().items()}
    try:
        for t in floating().values():
            t.data = t.data.to(dtype)
        yield
    finally:
        now = floating()
        for n, k in kept.items():
            now[n].data = now[n].data.to(k) if widening else k


def rebuild_reference(spec, card: ModelCard, weights: str | None, path: Path):
    """Build the PyTorch model with the reference weights; returns (model, weights record, notes)."""
    from ..models.registry import create_model_with_report

    recorded = card.weights if isinstance(card.weights, dict) else {}
    source, card_sha = recorded.get("source"), recorded.get("sha256")
    origin, weights_arg, arch, notes = _which_weights(spec, card, weights, path)
    if card.num_classes is None:
        raise ArtifactError(f"{path.name}'s card has no num_classes; export it again")
    model, report = create_model_with_report(spec.name, num_classes=card.num_classes, weights=weights_arg, **arch)
    digest = report.sha256 if report is not None else None
    matches = None if not card_sha or digest is None else digest == card_sha
    if matches is False:
        notes.append(
            f"the checkpoint (SHA-256 {digest[:12]}…) is not the one {path.name} was exported from "
            f"({card_sha[:12]}…): differences are expected"
        )
    record = {
        "origin": origin,
        "source": source if origin != "argument" else weights_arg,
        "path": report.path if report else None,
        "sha256": digest,
        "matches_card": matches,
    }
    return model, record, notes


def _which_weights(spec, card: ModelCard, weights: str | None, path: Path) -> tuple[str, str, dict, list]:
    """Where the reference weights come from: the argument, the checkpoint path on the card (unchanged since),
    or the published checkpoint in torch.hub's cache; returns (origin, weights argument, arch options, notes)."""
    from ..core.files import sha256_file
    from ..models.weights import hub_cache_path

    recorded = card.weights if isinstance(card.weights, dict) else {}
    source, card_path, card_sha = recorded.get("source"), recorded.get("path"), recorded.get("sha256")
    published = _published(spec, source)
    arch = dict(card.extra.get("arch_options") or {}) if isinstance(card.extra, dict) else {}
    notes: list[str] = []

    if weights is not None:
        origin, weights_arg = "argument", str(weights)
        if source == "random":
            notes.append(
                f"{path.name}'s card says it was exported with random weights: it can pass only if the "
                "given checkpoint holds the very same weights"
            )
        if published is not None and _looks_like_path(weights_arg):
            arch = {**published.arch_options, **arch}  # GoogLeNet's transform_input travels with the checkpoint
    elif card_path and Path(card_path).is_file():
        digest = sha256_file(card_path)
        if card_sha and digest != card_sha:
            raise CheckpointError(
                f"{path.name} was exported from '{card_path}', but that file has changed since (SHA-256 "
                f"{digest[:12]}…, recorded {card_sha[:12]}…); pass the original checkpoint with --weights"
            )
        origin, weights_arg = "card path", card_path
        if published is not None:
            arch = {**published.arch_options, **arch}
    elif published is not None:
        cached = hub_cache_path(published)
        if not cached.is_file():
            raise CheckpointError(
                f"{path.name} was exported from {spec.name}'s published '{published.name}' checkpoint, which is "
                f"not in torch.hub's cache ({cached}); put {published.url} there, or pass --weights "
                f"{published.name} to download it, or --weights FILE"
            )
        origin, weights_arg = "published cache", published.name
    elif source == "random":
        raise CheckpointError(
            f"{path.name} was exported with random weights, which are recorded nowhere (nor are the BatchNorm "
            "statistics re-estimated at export), so its PyTorch source cannot be rebuilt to compare with; export "
            f"from a checkpoint (edgecnn export {spec.name} --weights CKPT) and validate that artifact, or pass "
            "--weights CKPT if you know which weights the file holds"
        )
    elif source == "file" and card_path:
        raise CheckpointError(
            f"{path.name} was exported from the checkpoint '{card_path}'"
            + (f" (SHA-256 {card_sha[:12]}…)" if card_sha else "")
            + ", which is not there any more; pass it with "
            "--weights CKPT"
        )
    else:
        raise CheckpointError(
            f"{path.name} does not say which weights it holds; pass the checkpoint with --weights CKPT"
        )
    return origin, weights_arg, arch, notes


def _published(spec, source):
    if not source or source in ("random", "file"):
        return None
    try:
        return spec.checkpoint(source)
    except UnknownModelError:
        return None


def _looks_like_path(weights: str) -> bool:
    return is_checkpoint_path(weights)  # the one rule (edgecnn.core.paths)
