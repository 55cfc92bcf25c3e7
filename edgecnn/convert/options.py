"""Export options as data: checked once where they enter (``__post_init__``), passed whole, written to the
manifest as they are (``to_dict``). Standard library only, so the CLI can build them without torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..core.card import MAX_CLASSES
from ..core.errors import InputError
from ..core.sizes import parse_batch, parse_hw

STATIC_METHODS = ("minmax", "entropy", "percentile")  # what onnxruntime's calibrators implement
CALIBRATION_METHODS = STATIC_METHODS + ("auto",)  # auto: try each, keep the best agreement
INT8_POLICIES = ("static", "auto")
WEIGHT_BITS = (7, 8)
OPSETS = range(18, 22)
MAX_CALIB_COUNT = 10_000


@dataclass(frozen=True)
class Int8Options:
    """How the int8 artifact is made.

    Attributes:
        policy: ``static`` ships int8 (mixed precision if the fallback needed it); ``auto`` keeps the fastest of
            fp32, int8 and mixed that meets the accuracy target.
        calib_method: ``minmax``, ``entropy``, ``percentile``, or ``auto`` (try each, keep the best agreement).
        speed: time int8 against fp32 (the speed gate); off only in tests that do not judge speed.
        threads: intra-op threads the speed gate times with.
        speed_seconds: timed work per configuration in the speed gate.
        max_fallback: most layers the sensitivity pass may return to float (``None``: as many as needed).
        bias_correction: take the mean shift of int8 weight rounding back out of each layer's bias (trained
            weights only: see ``convert.bias_correction``).
        weight_bits: 7 (default) runs correctly on every CPU; 8 is a little more accurate but saturates
            onnxruntime's int16 pair sums on x86 CPUs without VNNI — for targets known to have VNNI, or ARM
            (see ``convert.quantize``).
    """

    policy: str = "static"
    calib_method: str = "minmax"
    speed: bool = True
    threads: int = 2
    speed_seconds: float = 0.5
    max_fallback: int | None = None
    bias_correction: bool = True
    weight_bits: int = 7

    def __post_init__(self) -> None:
        if self.policy not in INT8_POLICIES:
            raise InputError(f"int8 must be 'static' or 'auto', got {self.policy!r}")
        if self.calib_method not in CALIBRATION_METHODS:
            raise InputError(
                f"unknown calibration method '{self.calib_method}'; use one of {', '.join(CALIBRATION_METHODS)}"
            )
        if self.threads < 1 or self.speed_seconds <= 0:
            raise InputError("int8 speed gate needs threads ≥ 1 and a positive time per configuration")
        if self.weight_bits not in WEIGHT_BITS:
            raise InputError(f"--int8-weight-bits must be 7 or 8, got {self.weight_bits}")
        if self.max_fallback is not None and self.max_fallback < 0:
            raise InputError(f"max_fallback must be ≥ 0, got {self.max_fallback}")

    @classmethod
    def from_flag(
        cls, int8: bool | str | None, calib_method: str | None = None, weight_bits: int | None = None
    ) -> Int8Options | None:
        """``--int8`` / ``--int8 auto`` (``True``, ``"static"``, ``"auto"``) → options; falsy → ``None``.

        A calibration method or weight width without int8 is refused: it would be ignored without a word.
        """
        if not int8:
            if calib_method not in (None, "minmax"):
                raise InputError(f"--calib-method {calib_method} only applies with --int8; add --int8 or drop it")
            if weight_bits not in (None, 7):
                raise InputError(f"--int8-weight-bits {weight_bits} only applies with --int8; add --int8 or drop it")
            return None
        policy = "static" if int8 is True or int8 == "static" else str(int8)
        if policy not in INT8_POLICIES:
            raise InputError(f"--int8 takes no value or 'auto', got {int8!r}")
        return cls(policy=policy, calib_method=calib_method or "minmax", weight_bits=weight_bits or 7)


@dataclass(frozen=True)
class ExportOptions:
    """Everything ``export`` does besides naming the model and the folder.

    Attributes:
        weights: ``None`` (random init, BatchNorm re-estimated for meaningful parity), a checkpoint path, or a
            published checkpoint name (``"imagenet"``).
        num_classes: classifier size (default: the spec's or the checkpoint's); at least 1.
        input_size: ``(H, W)``; ``None`` is the spec's default. Given as ``224`` or ``"HxW"``, it is parsed here.
        batch: a fixed batch size, or ``None`` for a dynamic batch axis (``"dynamic"`` is accepted too).
        opset: ONNX default-domain opset, 18–21.
        fp16: also write an fp16 artifact.
        int8: ``Int8Options`` to also write an int8 artifact, or ``None``.
        calib: folder of calibration images; ``None`` takes crops of the bundled sample photographs.
        calib_count: how many calibration images to use (default: 200 from a folder; sample photos: 192 with
            trained weights, 64 with random ones).
        simplify: run onnxsim (a failure keeps the unsimplified graph and says why).
        labels: text file with one class name per line.
        arch_options: extra builder options (``width_mult``, ``bilinear``, ``in_channels`` …).
        embed_preprocess: also write uint8 NHWC twins that normalise inside the graph.
        bundle: also write a deployment bundle in ``OUT/bundle``.
        force: replace an existing export (only once the new one is complete).
    """

    weights: str | None = None
    num_classes: int | None = None
    input_size: tuple | None = None
    batch: int | None = None
    opset: int = 18
    fp16: bool = False
    int8: Int8Options | None = None
    calib: str | None = None
    calib_count: int | None = None
    simplify: bool = True
    labels: str | None = None
    arch_options: dict = field(default_factory=dict)
    embed_preprocess: bool = False
    bundle: bool = False
    force: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalise the convenient spellings once, here
        if self.input_size is not None:
            set_(self, "input_size", parse_hw(self.input_size, "--input-size"))
        set_(self, "batch", parse_batch(self.batch))
        set_(self, "arch_options", dict(self.arch_options or {}))
        for name in ("weights", "calib", "labels"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, str(value))
        if self.num_classes is not None and self.num_classes < 1:
            raise InputError(f"--num-classes must be at least 1, got {self.num_classes}")
        if self.num_classes is not None and self.num_classes > MAX_CLASSES:  # what a card may state (core.card)
            raise InputError(f"--num-classes must be at most {MAX_CLASSES}, got {self.num_classes}")
        if self.opset not in OPSETS:
            raise InputError(
                f"opset {self.opset} is not supported; use {OPSETS[0]}–{OPSETS[-1]} (the dynamo exporter starts at 18)"
            )
        if self.calib_count is not None and not 1 <= self.calib_count <= MAX_CALIB_COUNT:
            raise InputError(f"--calib-count must be between 1 and {MAX_CALIB_COUNT}, got {self.calib_count}")

    def replace(self, **changes) -> ExportOptions:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """As written to the manifest: plain JSON values."""
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["batch"] = self.batch or "dynamic"
        return d
