"""How the int8 artifact is made, as data: ``Int8Options`` checked once in ``__post_init__``.

Standard library only, so the CLI can build it without torch. The calibration vocabulary is defined here once:
``CALIBRATION_METHODS`` are what a calibrator implements, ``CALIBRATION_CHOICES`` what ``--calib-method`` takes
(those, and ``auto``: calibrate with each, keep the best agreement).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...core.errors import InputError

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")  # what onnxruntime's calibrators implement
CALIBRATION_CHOICES = CALIBRATION_METHODS + ("auto",)  # auto: try each, keep the best agreement
INT8_POLICIES = ("static", "auto")
WEIGHT_BITS = (7, 8)
#: the runtimes an int8 .onnx can be made for: the speed gate times its forms there (``--int8-for``)
INT8_RUNTIMES = ("cpu", "openvino")


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
        max_fallback: most layers the sensitivity pass may return to float (``None``: a quarter of the quantized
            layers, at least 4).
        bias_correction: take the mean shift of int8 weight rounding back out of each layer's bias (trained
            weights only: see ``convert.int8.bias_correction``).
        weight_bits: 7 (default) runs correctly on every CPU; 8 is a little more accurate but saturates
            onnxruntime's int16 pair sums on x86 CPUs without VNNI — for targets known to have VNNI, or ARM
            (see ``convert.int8.quantize``).
        runtimes: where the file runs (``INT8_RUNTIMES``: onnxruntime's CPU provider, OpenVINO): the speed gate
            times the forms on each and the policy chooses for each, since a float layer that is free on one
            runtime can cost on another. The first runtime's form is the int8 file; each further runtime whose
            choice differs gets a file of its own (``NAME.int8.openvino.onnx``).
    """

    policy: str = "static"
    calib_method: str = "minmax"
    speed: bool = True
    threads: int = 2
    speed_seconds: float = 0.5
    max_fallback: int | None = None
    bias_correction: bool = True
    weight_bits: int = 7
    runtimes: tuple = ("cpu",)

    def __post_init__(self) -> None:
        runtimes = self.runtimes
        if isinstance(runtimes, str):
            runtimes = tuple(r.strip().lower() for r in runtimes.split(",") if r.strip())
        object.__setattr__(self, "runtimes", tuple(dict.fromkeys(runtimes)))
        unknown = [r for r in self.runtimes if r not in INT8_RUNTIMES]
        if unknown or not self.runtimes:
            raise InputError(
                f"--int8-for takes runtimes from {', '.join(INT8_RUNTIMES)} (comma-separated), got "
                f"{', '.join(unknown) or 'none'}"
            )
        if self.policy not in INT8_POLICIES:
            raise InputError(f"int8 must be 'static' or 'auto' (--int8 takes no value or 'auto'), got {self.policy!r}")
        if self.calib_method not in CALIBRATION_CHOICES:
            raise InputError(
                f"unknown calibration method '{self.calib_method}'; use one of {', '.join(CALIBRATION_CHOICES)}"
            )
        if self.threads < 1 or self.speed_seconds <= 0:
            raise InputError("int8 speed gate needs threads ≥ 1 and a positive time per configuration")
        if self.weight_bits not in WEIGHT_BITS:
            raise InputError(f"--int8-weight-bits must be 7 or 8, got {self.weight_bits}")
        if self.max_fallback is not None and self.max_fallback < 0:
            raise InputError(f"max_fallback must be ≥ 0, got {self.max_fallback}")

    @property
    def methods(self) -> tuple[str, ...]:
        """The calibration methods to try: each of them for ``auto``, else the one chosen."""
        return CALIBRATION_METHODS if self.calib_method == "auto" else (self.calib_method,)

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
        policy = "static" if int8 is True else str(int8)
        return cls(policy=policy, calib_method=calib_method or "minmax", weight_bits=weight_bits or 7)
