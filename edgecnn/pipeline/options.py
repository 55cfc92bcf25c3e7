"""The export's options as data: ``ExportOptions`` (with its ``Int8Options``) built once where a command or a caller
enters, checked once in ``__post_init__``, passed whole to ``export`` and written to the manifest as ``to_dict()``
gives it. Standard library only, so the CLI builds them without torch.

``options_from_keywords`` is the one keyword form (``export(name, out, fp16=True, int8="auto")``): ExportOptions'
fields, plus the int8 flag spellings mapped onto ``Int8Options`` in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..convert.int8.options import Int8Options
from ..convert.options import OPSETS
from ..core.card import MAX_CLASSES
from ..core.errors import InputError
from ..core.sizes import parse_batch, parse_hw

MAX_CALIB_COUNT = 10_000
#: The keywords of the int8 flag (``--int8 [auto]``, ``--calib-method``, ``--int8-weight-bits``), mapped onto
#: ``Int8Options`` by ``options_from_keywords``; every other keyword is a field of ``ExportOptions``.
INT8_KEYWORDS = ("int8", "calib_method", "int8_weight_bits")


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
        formats: the file formats to write, from ``convert.targets.FORMATS`` (``"onnx"``, ``"tflite"``, ``"pte"``);
            given as a tuple or ``"onnx,tflite"``; ``"all"`` is every format this install can make.
        quantized_io: the int8 ``.tflite`` takes and returns int8 tensors (scale and zero point in the file)
            instead of float32.
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
    formats: tuple = ("onnx",)
    quantized_io: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalise the convenient spellings once, here
        if self.input_size is not None:
            set_(self, "input_size", parse_hw(self.input_size, "input size"))  # the one parse of the size
        set_(self, "batch", parse_batch(self.batch))
        set_(self, "arch_options", dict(self.arch_options or {}))
        for name in ("weights", "calib", "labels"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, str(value))
        if self.int8 is not None and not isinstance(self.int8, Int8Options):
            raise InputError(f"int8 must be Int8Options or None, got {self.int8!r} (keywords: int8=True/'auto')")
        if self.num_classes is not None and self.num_classes < 1:
            raise InputError(f"--num-classes must be at least 1, got {self.num_classes}")
        if self.num_classes is not None and self.num_classes > MAX_CLASSES:  # what a card may state (core.card)
            raise InputError(f"--num-classes must be at most {MAX_CLASSES}, got {self.num_classes}")
        if self.opset not in OPSETS:
            raise InputError(
                f"opset {self.opset} is not supported; use {OPSETS[0]}–{OPSETS[-1]} (the dynamo exporter starts at 18)"
            )
        set_(self, "formats", parse_formats(self.formats))
        if self.quantized_io and (self.int8 is None or "tflite" not in self.formats):
            raise InputError("--quantized-io applies to the int8 .tflite: add --int8 and --format tflite, or drop it")
        if self.calib_count is not None and not 1 <= self.calib_count <= MAX_CALIB_COUNT:
            raise InputError(f"--calib-count must be between 1 and {MAX_CALIB_COUNT}, got {self.calib_count}")

    def replace(self, **changes) -> ExportOptions:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """As written to the manifest's ``options`` (version 2): plain JSON values, ``int8`` as
        ``Int8Options``' fields (or ``null``), ``batch`` as ``"dynamic"`` when not fixed."""
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size) if self.input_size else None
        d["batch"] = self.batch or "dynamic"
        d["formats"] = list(self.formats)
        if d["int8"] is not None:
            d["int8"]["runtimes"] = list(self.int8.runtimes)
        return d


def parse_formats(value) -> tuple:
    """``"onnx,tflite"``, ``("onnx", "pte")`` or ``"all"`` → the formats in ``FORMATS`` order, each once; ``all`` is
    every format this install can make (``convert.targets.formats``).

    Raises:
        InputError: an unknown format, or none.
    """
    from ..convert.targets.request import FORMATS, formats

    names = value.split(",") if isinstance(value, str) else list(value or ())
    names = [str(n).strip().lower().lstrip(".") for n in names if str(n).strip()]
    if names == ["all"]:
        return tuple(f for f, reason in formats().items() if reason is None)
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise InputError(f"unknown format {unknown[0] if unknown else ''!r}; use {', '.join(FORMATS)} or all")
    return tuple(f for f in FORMATS if f in names)


def options_from_keywords(**keywords) -> ExportOptions:
    """The keyword form of ``export``: ``ExportOptions``' fields as keywords, where ``int8`` may also be the flag
    (``True``/``"static"``/``"auto"``) with ``calib_method`` and ``int8_weight_bits`` beside it.

    Raises:
        TypeError: a keyword that is neither a field nor one of ``INT8_KEYWORDS``.
        InputError: a value the options refuse.
    """
    int8, method, bits = (keywords.pop(k, None) for k in INT8_KEYWORDS)
    if not isinstance(int8, Int8Options):
        int8 = Int8Options.from_flag(int8, method, bits)
    elif method is not None or bits is not None:
        raise TypeError("pass calib_method/int8_weight_bits inside Int8Options when int8 is an Int8Options")
    return ExportOptions(int8=int8, **keywords)


def check_input_size(size: tuple | None, spec) -> tuple[int, int]:
    """The ``(H, W)`` an export of ``spec`` runs at: ``size`` (as ``ExportOptions`` parsed it) checked against
    the architecture's minimum and multiple, or the spec's default when ``None``.

    Raises:
        InputError: a size the architecture cannot take.
    """
    if size is None:
        return tuple(spec.input_size)
    (h, w), (mh, mw) = size, spec.min_input_size
    if h < mh or w < mw:
        raise InputError(f"{spec.name} needs an input of at least {mh}x{mw}, got {h}x{w}")
    if spec.size_multiple > 1 and (h % spec.size_multiple or w % spec.size_multiple):
        raise InputError(f"{spec.name} needs height and width that are multiples of {spec.size_multiple}, got {h}x{w}")
    return h, w
