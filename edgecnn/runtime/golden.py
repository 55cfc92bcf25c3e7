"""Golden outputs: what an artifact is judged against where PyTorch is not (a phone-class board, the device install).

Every export folder holds ``golden.npz`` beside its files: the export's held-out parity photographs, preprocessed
(``inputs``), and PyTorch's fp32 outputs on them (``reference``), plus the yardstick that fp32 and fp16 parity is
judged by at export time (``convert.reference.TorchOutputs``: float64 outputs on the first few inputs, and PyTorch's
own runs at each precision). ``judge`` runs ``runtime.compare.compare`` on them with the artifact's precision's
tolerances, so a file copied to the target gets the same verdict there as it got at export, from numpy alone.

A bundle's golden data (``runtime.selftest``) holds each model's own expected output instead; ``from_bundle`` makes
a ``Golden`` of its input and its fp32 model's output (no yardstick: the fixed relative rules of
``runtime.compare``).

The file is data, never code: arrays are read with ``allow_pickle=False``, and each header is checked (type, shape,
``EDGECNN_MAX_INPUT_ELEMENTS``) before any array is loaded, so a small file cannot declare a huge one.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ArtifactError, InputError
from ..core.files import write_bytes_atomic
from ..core.sizes import check_input_shape
from .compare import ExactReference, ParityReport, compare

GOLDEN_FILE = "golden.npz"
_FLOATS = ("float16", "float32", "float64")
_FIX = "export again to write it anew"


@dataclass(frozen=True)
class Golden:
    """The inputs, PyTorch's fp32 outputs on them, and the yardstick of fp32/fp16 parity (see the module docstring).

    Attributes:
        inputs: N×C×H×W float32, preprocessed as the model's card says.
        reference: PyTorch's fp32 outputs on ``inputs`` (a bundle: its fp32 model's expected output).
        exact: float64 outputs on the first ``len(exact)`` inputs; ``None``: no yardstick.
        own: precision → PyTorch's own runs at that precision on those inputs (one array per run).
        source: ``"pytorch"`` or ``"fp32 artifact"``.
    """

    inputs: np.ndarray
    reference: np.ndarray
    exact: np.ndarray | None = None
    own: dict = field(default_factory=dict)
    source: str = "pytorch"

    def yardstick(self, precision: str) -> ExactReference | None:
        """The float64 reference an fp32/fp16 artifact is judged by, as at export; ``None``: the fixed rules."""
        runs = self.own.get(precision)
        if self.exact is None or not runs:
            return None
        return ExactReference(self.exact, tuple(runs))


def save_golden(path: str | os.PathLike, golden: Golden) -> Path:
    """Write ``golden`` as one .npz (written whole or not at all)."""
    arrays = {"inputs": golden.inputs, "reference": golden.reference}
    if golden.exact is not None:
        arrays["exact"] = golden.exact
    for precision, runs in golden.own.items():
        for k, run in enumerate(runs):
            arrays[f"own_{precision}_{k}"] = run
    buffer = io.BytesIO()
    # compressed: preprocessed photographs hold few distinct values per channel (about a quarter of the size)
    np.savez_compressed(buffer, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return write_bytes_atomic(path, buffer.getvalue())


def load_golden(path: str | os.PathLike, source: str = "pytorch") -> Golden:
    """Read a ``golden.npz`` written by ``save_golden``, each array's header checked before it is loaded.

    Raises:
        ArtifactError: a missing or unreadable file, an array that is not float, of an impossible shape, over the
            size limit, or inputs and reference that do not pair up; one line naming the file and the array.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no golden data here; {_FIX}")
    from .selftest import golden_headers  # the .npy header reader the bundle self-test uses

    try:
        headers = golden_headers(path)
    except ArtifactError as exc:
        raise ArtifactError(str(exc).replace("copy the bundle again", _FIX)) from None
    _check_headers(path.name, headers)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in headers}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path}: cannot read the golden data ({exc}); {_FIX}") from None
    own: dict[str, list] = {}
    for key in sorted(k for k in arrays if k.startswith("own_")):
        _, precision, _ = key.split("_", 2)
        own.setdefault(precision, []).append(arrays[key])
    return Golden(
        inputs=arrays["inputs"].astype(np.float32, copy=False),
        reference=arrays["reference"],
        exact=arrays.get("exact"),
        own={p: tuple(runs) for p, runs in own.items()},
        source=source,
    )


def _check_headers(name: str, headers: dict) -> None:
    """Names, types and shapes of the arrays, from their headers alone."""
    for key in ("inputs", "reference"):
        if key not in headers:
            raise ArtifactError(f"{name} lacks the array '{key}'; {_FIX}")
    for key, (shape, dtype) in headers.items():
        known = key in ("inputs", "reference", "exact") or (key.startswith("own_") and key.count("_") >= 2)
        if not known:
            raise ArtifactError(f"{name}: unexpected array '{key}'; {_FIX}")
        if dtype.hasobject or dtype.name not in _FLOATS:
            raise ArtifactError(f"{name}: array '{key}' is of type {dtype}, not float (never loaded with pickle)")
        try:
            check_input_shape(shape, f"{name}: array '{key}'")
        except InputError as exc:
            raise ArtifactError(str(exc)) from None
    (inputs, _), (reference, _) = headers["inputs"], headers["reference"]
    if len(inputs) != 4 or not inputs[0] or not reference or reference[0] != inputs[0]:
        raise ArtifactError(
            f"{name}: inputs of shape {list(inputs)} and reference of shape {list(reference)} do not pair up "
            f"(4-D inputs, one reference row per input); {_FIX}"
        )
    for key, (shape, _) in headers.items():
        if key == "exact" or key.startswith("own_"):
            if tuple(shape[1:]) != tuple(reference[1:]) or not 0 < shape[0] <= inputs[0]:
                raise ArtifactError(f"{name}: array '{key}' of shape {list(shape)} does not match the reference")


def judge(golden: Golden, outputs: np.ndarray, *, task: str, precision: str, random_weights: bool) -> ParityReport:
    """An artifact's outputs on ``golden.inputs`` against the reference, by its precision's rules (as at export)."""
    return compare(
        golden.reference,
        outputs,
        task=task,
        precision=precision,
        random_weights=random_weights and precision == "int8",
        exact=golden.yardstick(precision),
    )


def from_bundle(inputs: np.ndarray, fp32_expected: np.ndarray) -> Golden:
    """A bundle's golden input and its fp32 model's expected output (no yardstick: the fixed relative rules)."""
    return Golden(np.asarray(inputs, np.float32), np.asarray(fp32_expected), source="fp32 artifact")
