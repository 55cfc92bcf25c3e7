"""Predictor: run an exported model on images with numpy, onnxruntime and Pillow only — no torch.

This is what an app imports::

    from edgecnn.runtime import Predictor

    predictor = Predictor("exported/mobilenet_v2/mobilenet_v2.onnx")
    for label, probability in predictor.predict("cat.jpg")[0]:
        print(f"{probability:.1%} {label}")

The model's ``ModelCard`` (stored in the .onnx metadata) says how to preprocess images and what the outputs
mean; a model without one works when the missing facts are passed as options. Nothing here imports torch
(a test runs it in a subprocess and checks ``sys.modules``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.card import ModelCard, check_classes
from ..core.errors import ArtifactError, InputError
from ..core.sizes import check_input_shape, max_input_elements
from .preprocess import ImageLike, PreprocessParams, preprocess, preprocess_uint8
from .runner import open_runner
from .session import ORT_DTYPES, run_batched

# The input types an image graph may take (their numpy dtypes come from session.ORT_DTYPES).
_IMAGE_TYPES = ("tensor(float)", "tensor(float16)", "tensor(uint8)", "tensor(double)")

#: Images per onnxruntime call when the graph's batch axis is dynamic.
DEFAULT_BATCH = 16


@dataclass(frozen=True)
class _Input:
    """What the graph's input takes, read from the runner (the graph is the truth; the card a hint)."""

    name: str
    shape: tuple  # ints for static axes, None for dynamic ones
    dtype: Any
    layout: str  # "NCHW" or "NHWC"

    @property
    def channel_axis(self) -> int:
        return 3 if self.layout == "NHWC" else 1

    @property
    def hw_axes(self) -> tuple[int, int]:
        return (1, 2) if self.layout == "NHWC" else (2, 3)


class Predictor:
    """An exported edgecnn model, ready to classify or segment images.

    Args:
        path: the .onnx (or .ort) file.
        providers: execution providers by short name (``"cpu"``, ``"cuda"``, ``"tensorrt"``, ``"coreml"``,
            ``"nnapi"``, ``"xnnpack"``, …) or onnxruntime name, in priority order; default CPU. A provider this
            onnxruntime lacks raises ``ProviderUnavailableError`` — never a silent fallback.
        intra_op_threads: threads onnxruntime uses inside one call (default: its own choice).
        mean, std, resize, crop, labels, task: override the model card, or supply what a model without edgecnn
            metadata needs (``mean`` and ``std`` always, ``crop`` when the graph's H/W are dynamic). ``resize``
            ``None`` resizes the whole image to ``crop``; ``task`` is inferred from the output rank.

    Attributes:
        card: the ``ModelCard`` read from the file, or ``None``.
        task: ``"classification"`` or ``"segmentation"``.
        labels: class names, or ``None`` (labels are then the class indices as strings).
        providers: the providers the runner really uses, as the runtime reports them.
        params: the ``PreprocessParams`` images go through.

    Calls are safe from several threads at once: onnxruntime's session ``run`` is thread-safe and the
    predictor keeps no per-call state.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Sequence[Any] | None = None,
        *,
        intra_op_threads: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        resize: int | None = None,
        crop: Any = None,
        labels: Sequence[str] | None = None,
        task: str | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():  # an .mlpackage is a folder; open_runner refuses anything else that is not a file
            raise ArtifactError(f"{self.path}: no such model file")
        # open_runner refuses a provider this onnxruntime lacks, and one it drops at start-up
        # (e.g. CUDA libraries missing), naming what to install: never a silent CPU fallback.
        self._runner = open_runner(self.path, providers=providers or ("cpu",), threads=intra_op_threads)
        self.providers = self._runner.providers

        self.card = ModelCard.from_metadata(self._runner.metadata, self.path.name)
        self._input = self._read_input()
        self._output_name = self._read_output()
        self.embedded = self._input.dtype == np.uint8
        self.task = task or (self.card.task if self.card else self._infer_task())
        if self.task not in ("classification", "segmentation"):
            raise InputError(f"task must be 'classification' or 'segmentation', got '{self.task}'")
        self.params = self._read_params(mean, std, resize, crop)
        self.labels = (
            list(labels) if labels is not None else (list(self.card.labels) if self.card and self.card.labels else None)
        )
        # the card's class count and the names given must fit the graph's class axis (else names would be wrong)
        check_classes(
            self.path.name,
            self.card,
            next(o.shape for o in self._runner.outputs if o.name == self._output_name),
            labels,
        )
        self.batch_size = self._batch_size()

    # --- public API ---------------------------------------------------------------------------------------

    @property
    def input_shape(self) -> tuple:
        """The graph's input shape; ``None`` marks a dynamic axis."""
        return self._input.shape

    @property
    def input_layout(self) -> str:
        """``"NCHW"`` or ``"NHWC"``: how the graph takes its image (uint8 twins may take either)."""
        return self._input.layout

    def preprocess(self, images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
        """A batch of model input for images, in the graph's layout and dtype."""
        items = _as_list(images)
        if self.embedded:
            arrays = [preprocess_uint8(img, self.params) for img in items]  # H×W×C uint8
            batch = np.stack(arrays)
            return batch if self._input.layout == "NHWC" else np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        return np.stack([preprocess(img, self.params) for img in items]).astype(self._input.dtype, copy=False)

    def run(self, array: np.ndarray) -> np.ndarray:
        """Raw model output (logits) for a preprocessed batch.

        Args:
            array: N×C×H×W float32 (N×H×W×C uint8 for graphs with embedded preprocessing).

        Returns:
            The graph's output for all N inputs, run in chunks when the graph's batch size is fixed.

        Raises:
            InputError: a shape, channel count or dtype the graph cannot take.
        """
        array = self._check(array)
        # A dynamic batch runs in one call (chunk = all rows); a fixed one in pieces of its size, padded.
        return run_batched(
            self._runner, array, input_name=self._input.name, outputs=[self._output_name], chunk=len(array)
        )[0]

    def predict(self, images: ImageLike | Sequence[ImageLike], top_k: int = 5) -> list:
        """Classify or segment images.

        Args:
            images: one image or a list (paths, encoded bytes, PIL images, uint8 H×W×C arrays).
            top_k: classes to return per image (classification).

        Returns:
            One entry per image, always a list (also for a single image). Classification: a list of
            ``(label, probability)`` pairs, most probable first (softmax computed in float64). Segmentation:
            an ``H×W`` class mask (uint8, or int32 beyond 256 classes) at the model's input resolution.
        """
        items = _as_list(images)
        if self.task == "classification" and int(top_k) < 1:
            raise InputError(f"top_k must be at least 1, got {top_k}")
        results: list = []
        for start in range(0, len(items), self.batch_size):
            results.extend(self.postprocess(self.run(self.preprocess(items[start : start + self.batch_size])), top_k))
        return results

    def postprocess(self, logits: np.ndarray, top_k: int = 5) -> list:
        """What ``predict`` returns, from the output of ``run``: top-k (label, probability) pairs per row for a
        classifier, an H×W class mask per row for a segmentation model (for pipelines that preprocess
        elsewhere, such as ``edgecnn.scale``)."""
        if self.task == "classification":
            return [self._top_k(row, int(top_k)) for row in logits]
        return _masks(logits)

    def __repr__(self) -> str:
        name = self.card.model if self.card else "model without edgecnn metadata"
        return (
            f"Predictor({self.path.name}: {name}, {self.task}, input {list(self.input_shape)}, "
            f"providers {self.providers})"
        )

    # --- internals ---------------------------------------------------------------------------------------------

    def _batch_size(self) -> int:
        """Images per onnxruntime call: a fixed batch, else ``DEFAULT_BATCH`` or fewer, so that one call's input
        stays within ``EDGECNN_MAX_INPUT_ELEMENTS`` (a 4096×4096 model takes one image at a time)."""
        inp = self._input
        shape = [inp.shape[0], *([None] * 3)]
        shape[inp.channel_axis] = self.params.channels
        for axis, size in zip(inp.hw_axes, self.params.crop):
            shape[axis] = int(size)
        what = f"{self.path.name}: one batch of input '{inp.name}'"
        if isinstance(inp.shape[0], int):
            check_input_shape(shape, what)  # a fixed batch: every call is this big
            return inp.shape[0]
        per_image = check_input_shape(shape[1:], what)
        return max(1, min(DEFAULT_BATCH, max_input_elements() // per_image))

    def _read_input(self) -> _Input:
        inputs = self._runner.inputs
        if len(inputs) != 1:
            raise ArtifactError(
                f"{self.path.name}: expected a model with one image input, it has "
                f"{len(inputs)} ({', '.join(i.name for i in inputs)})"
            )
        node = inputs[0]
        if node.type not in _IMAGE_TYPES or len(node.shape) != 4:
            raise ArtifactError(
                f"{self.path.name}: input '{node.name}' is {node.type} of shape {node.shape}; "
                "expected a 4-D image batch"
            )
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
        # a 1 kB file may declare a 1×3×30000×30000 input: refused before any image is made that size
        check_input_shape(shape, f"{self.path.name}: input '{node.name}'")
        dtype = ORT_DTYPES[node.type]
        if self.card is not None and self.card.layout in ("NCHW", "NHWC"):
            layout = self.card.layout
        elif dtype == np.uint8 and shape[3] in (1, 3) and shape[1] not in (1, 3):
            layout = "NHWC"  # embedded-preprocessing graphs take camera-style uint8 H×W×C
        else:
            layout = "NCHW"
        return _Input(node.name, shape, dtype, layout)

    def _read_output(self) -> str:
        names = [o.name for o in self._runner.outputs]
        for preferred in ((self.card.output_name if self.card else None), "logits"):
            if preferred in names:
                return preferred
        return names[0]

    def _infer_task(self) -> str:
        rank = len(self._runner.outputs[0].shape)
        return "segmentation" if rank == 4 else "classification"

    def _read_params(self, mean, std, resize, crop) -> PreprocessParams:
        """Preprocessing from explicit options first, then the card, then what the graph's shape tells."""
        inp, card = self._input, self.card
        if card is not None and card.color_order not in ("RGB", "L"):
            raise ArtifactError(
                f"{self.path.name} expects {card.color_order} pixels; the runtime feeds RGB "
                "(or L for grayscale) images: re-export the model for RGB input"
            )
        static_hw = tuple(inp.shape[a] for a in inp.hw_axes)
        if inp.shape[inp.channel_axis] is not None:
            channels = inp.shape[inp.channel_axis]
        elif card is not None:
            channels = PreprocessParams.from_card(card).channels
        else:
            channels = len(mean) if mean is not None else 3
        if crop is None:
            crop = card.crop if card else (static_hw if None not in static_hw else None)
        if resize is None and card is not None:
            resize = card.resize  # without a card, None: the whole image is resized to the crop
        if mean is None:
            mean = card.mean if card else ([0.0] * channels if self.embedded else None)
        if std is None:
            std = card.std if card else ([1.0] * channels if self.embedded else None)
        missing = [name for name, value in (("mean", mean), ("std", std), ("crop", crop)) if value is None]
        if missing:
            why = " and its input height/width are dynamic" if "crop" in missing else ""
            raise InputError(
                f"{self.path.name} carries no edgecnn metadata{why}; pass "
                + ", ".join(f"{m}=" for m in missing)
                + " to Predictor (edgecnn predict: "
                + " ".join(f"--{m}" for m in missing)
                + "), or export it with 'edgecnn export', which records them"
            )
        params = PreprocessParams(
            crop=crop,
            resize=resize,
            mean=tuple(mean),
            std=tuple(std),
            pixel_scale=float(card.pixel_scale) if card else 255.0,
            channels=int(channels),
        )
        if None not in static_hw and tuple(params.crop) != static_hw:
            raise InputError(
                f"crop {params.crop[0]}x{params.crop[1]} does not fit {self.path.name}, whose input "
                f"is fixed at {static_hw[0]}x{static_hw[1]}"
            )
        return params

    def _size_multiple(self) -> int:
        if self.card and isinstance(self.card.extra.get("size_multiple"), int):
            return self.card.extra["size_multiple"]
        return 16 if self.task == "segmentation" else 1  # U-Net halves H/W four times

    def _check(self, array: Any) -> np.ndarray:
        inp = self._input
        if not isinstance(array, np.ndarray):
            raise InputError(f"run() takes a numpy array, got {type(array).__name__}; use predict() for images")
        layout = inp.layout
        if array.ndim != 4:
            raise InputError(f"expected a 4-D {layout} batch, got an array of shape {array.shape}")
        if inp.dtype == np.uint8:
            if array.dtype != np.uint8:
                raise InputError(
                    f"{self.path.name} takes uint8 pixels ({layout}, preprocessing is in the graph), got {array.dtype}"
                )
        elif np.issubdtype(array.dtype, np.floating):
            array = array.astype(inp.dtype, copy=False)
        else:
            raise InputError(
                f"{self.path.name} takes normalised {np.dtype(inp.dtype).name} input, got "
                f"{array.dtype}; preprocess images first (or use predict())"
            )
        channels = array.shape[inp.channel_axis]
        want = inp.shape[inp.channel_axis]
        if want is not None and channels != want:
            raise InputError(
                f"{self.path.name} takes {want} channel(s) ({layout}), got {channels} (array of shape {array.shape})"
            )
        hw = tuple(array.shape[a] for a in inp.hw_axes)
        for axis_name, got, fixed in zip(("height", "width"), hw, (inp.shape[a] for a in inp.hw_axes)):
            if fixed is not None and got != fixed:
                raise InputError(
                    f"{self.path.name} takes {axis_name} {fixed}, got {got} (array of shape "
                    f"{array.shape}); its input is {_fmt_shape(inp.shape)}"
                )
        multiple = self._size_multiple()
        dynamic = [got for got, a in zip(hw, inp.hw_axes) if inp.shape[a] is None]
        if multiple > 1 and any(s % multiple for s in dynamic):
            raise InputError(f"{self.path.name} takes height and width in multiples of {multiple}, got {hw[0]}x{hw[1]}")
        if array.shape[0] == 0:
            raise InputError("empty batch: no images to run")
        return np.ascontiguousarray(array)

    def _top_k(self, logits: np.ndarray, k: int) -> list[tuple[str, float]]:
        z = logits.astype(np.float64).reshape(-1)
        z = np.exp(z - z.max())
        probs = z / z.sum()
        order = np.argsort(-probs, kind="stable")[: min(k, probs.size)]
        names = self.labels
        return [((names[i] if names and i < len(names) else str(int(i))), float(probs[i])) for i in order]


def _masks(logits: np.ndarray) -> list[np.ndarray]:
    """Class masks from N×C×H×W logits: argmax, or logit > 0 for a single-channel (binary) output."""
    if logits.ndim != 4:
        raise ArtifactError(f"a segmentation model should output N×C×H×W, got shape {logits.shape}")
    if logits.shape[1] == 1:
        masks = (logits[:, 0] > 0).astype(np.uint8)
    else:
        masks = logits.argmax(axis=1).astype(np.uint8 if logits.shape[1] <= 256 else np.int32)
    return list(masks)


def _as_list(images: Any) -> list:
    if isinstance(images, (list, tuple)):
        if not images:
            raise InputError("no images given")
        return list(images)
    return [images]


def _fmt_shape(shape: tuple) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
