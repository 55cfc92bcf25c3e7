"""A Core ML ``.mlpackage`` behind the ``Runner`` interface: on macOS through ``coremltools.models.MLModel(path)
.predict``; anywhere else the opener says, in one line, that the file was converted and checked, not run.

coremltools converts on Linux but predicts only through Apple's Core ML framework (its ``libcoremlpython`` binding
is built for macOS alone), so the opener asks two things before it loads: is this macOS, and does this coremltools
have its Core ML binding. The I/O and the card come from ``mlpackage.inspect`` (no coremltools needed), so a runner
describes the file as every other runner does. What ``--ep`` means here is Core ML's compute units (``UNITS``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ...core.errors import ArtifactError, InputError, ProviderUnavailableError, first_line
from ..runner import IOSpec, Runner, RunnerOptions
from .mlpackage import inspect

INSTALL = 'pip install "edgecnn[coreml]"'
NOT_RUN = "converted and checked structurally, not run: Core ML predicts on macOS only"
#: ``--ep`` names → coremltools' ``ComputeUnit`` (``cpu`` is the default, as on every other runtime)
UNITS = {"cpu": "CPU_ONLY", "all": "ALL", "coreml": "ALL", "gpu": "CPU_AND_GPU", "ane": "CPU_AND_NE"}


def pick_unit(providers: str | Sequence) -> str:
    """The compute unit for ``--ep``'s names (a priority list: the first one decides).

    Raises:
        ProviderUnavailableError: a name Core ML has no compute unit for.
    """
    names = providers.replace("+", ",").split(",") if isinstance(providers, str) else list(providers)
    names = [str(n).strip().lower() for n in names if n and str(n).strip()]
    for name in names:
        if name not in UNITS:
            raise ProviderUnavailableError(
                f"an .mlpackage runs on Core ML's compute units: --ep {', '.join(UNITS)}; {name!r} is not one of them"
            )
    return UNITS[names[0]] if names else UNITS["cpu"]


def _on_macos() -> bool:
    return sys.platform == "darwin"


def predictor_api(name: str):
    """coremltools' ``MLModel`` class and its ``ComputeUnit`` enum, where Core ML can predict here.

    Raises:
        ProviderUnavailableError: not macOS, or a coremltools without its Core ML binding.
        InputError: coremltools is not installed (on macOS).
    """
    if not _on_macos():
        raise ProviderUnavailableError(
            f"{name}: Core ML predicts on macOS only; converted and checked structurally, not run"
        )
    try:
        import coremltools
        from coremltools.models import model as model_module
    except ImportError as exc:
        raise InputError(f"{name}: running an .mlpackage needs coremltools: {INSTALL}") from exc
    if getattr(model_module, "_MLModelProxy", None) is None:  # the binding to Core ML did not load
        raise ProviderUnavailableError(
            f"{name}: coremltools {coremltools.__version__} has no Core ML binding here (libcoremlpython); "
            "reinstall it from its macOS wheel"
        )
    return coremltools.models.MLModel, coremltools.ComputeUnit


class CoreMLRunner(Runner):
    """An ``.mlpackage`` on Core ML (macOS).

    Attributes:
        model: coremltools' ``MLModel``.
        name: the package's name, for messages.
        structure: what ``mlpackage.inspect`` read from the package.
    """

    runtime = "coreml"

    def __init__(self, model, *, name: str, unit: str, structure: dict) -> None:
        self.model, self.name, self._unit, self.structure = model, name, unit, structure
        self.metadata = dict(structure["card"])
        self.inputs = tuple(_spec(f) for f in structure["inputs"])
        self.outputs = tuple(_spec(f) for f in structure["outputs"])

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        names = [s.name for s in self.outputs]
        picks = list(outputs) if outputs else names
        unknown = [n for n in picks if n not in names]
        if unknown:
            raise InputError(f"{self.name}: no output {unknown[0]!r} (outputs: {names})")
        arrays = {}
        for spec in self.inputs:
            if spec.name not in feeds:
                raise InputError(
                    f"{self.name}: no feed for input {spec.name!r} (inputs: {[s.name for s in self.inputs]})"
                )
            x = np.asarray(feeds[spec.name], np.float32)
            if x.ndim != len(spec.shape) or tuple(x.shape[1:]) != tuple(spec.shape[1:]):
                raise InputError(f"{self.name}: input {spec.name!r} takes shape {spec.shape}, got {tuple(x.shape)}")
            arrays[spec.name] = x
        rows = {len(a) for a in arrays.values()}
        if len(rows) > 1:
            raise InputError(f"{self.name}: the inputs' batch sizes differ: {sorted(rows)}")
        # the package is batch 1 (static shape): a batch is predicted one image at a time
        results = [
            self._predict({k: a[i : i + 1] for k, a in arrays.items()}) for i in range(rows.pop() if rows else 0)
        ]
        return [np.concatenate([np.asarray(r[n], np.float32) for r in results]) for n in picks]

    def _predict(self, feeds: dict) -> dict:
        try:
            return self.model.predict(feeds)
        except Exception as exc:  # Core ML's errors come through coremltools as plain RuntimeErrors and others
            raise ArtifactError(f"Core ML cannot run {self.name}: {first_line(exc)}") from exc

    def info(self) -> dict:
        return {
            "runtime": self.runtime,
            "providers": [self._unit],
            "device": "cpu" if self._unit == "CPU_ONLY" else self._unit.lower(),
            "threads": None,  # Core ML chooses its own
            "backend": "coreml",
            "precision": self.structure["precision"],
        }


def _spec(feature: dict) -> IOSpec:
    dtype = np.dtype(feature["dtype"]) if feature["dtype"] else None
    return IOSpec(feature["name"], tuple(feature["shape"] or ()), dtype, f"tensor({feature['dtype'] or 'unknown'})")


def open_coreml(source, options: RunnerOptions) -> CoreMLRunner:
    """The ``coreml`` opener: an ``.mlpackage`` folder, on the compute unit ``options.providers`` names.

    Raises:
        InputError: the package's bytes instead of its path, or coremltools missing on macOS.
        ArtifactError: no package there, or one whose specification does not read.
        ProviderUnavailableError: not macOS (one line: converted and checked, not run), no Core ML binding in this
            coremltools, or an ``--ep`` Core ML has no unit for.
    """
    if isinstance(source, (bytes, bytearray)):
        raise InputError("an .mlpackage is a folder: give its path, not bytes")
    path = Path(source)
    structure = inspect(path)  # a missing or damaged package says so first, on every platform
    mlmodel, units = predictor_api(path.name)  # off macOS, this is the one line a user needs, whatever --ep says
    unit = pick_unit(options.providers)
    try:
        model = mlmodel(str(path), compute_units=getattr(units, unit))
    except Exception as exc:  # Core ML's load errors reach Python as plain Exceptions
        raise ArtifactError(f"Core ML cannot load {path.name}: {first_line(exc)}") from exc
    return CoreMLRunner(model, name=path.name, unit=unit, structure=structure)
