"""The bundle self-test (numpy and onnxruntime only: no torch, no Pillow), so it runs wherever an app's runtime does.

``selftest(bundle)`` — or ``edgecnn selftest BUNDLE`` — checks every file against ``bundle.json``, runs each
model on the golden input with onnxruntime and compares its output with the expected one, within tolerances set
by precision. Every path it reads comes from ``bundle.json`` and must stay inside the bundle folder
(``edgecnn.core.paths.inside``): an absolute path or one that climbs out (``../``) is refused, never opened.
``edgecnn.deploy.bundle`` makes bundles and re-exports what is here.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.documents import BUNDLE_JSON, read_bundle_json
from ..core.errors import ArtifactError, InputError
from ..core.files import sha256_file
from ..core.paths import inside
from ..core.sizes import check_input_shape
from .session import run_batched

BUNDLE_MANIFEST = BUNDLE_JSON

#: How close another runtime (another CPU, another provider) must come to the golden outputs. fp32 allows
#: different kernels and summation orders (1e-3 of the output range), not a reduced-precision mode; fp16 and int8
#: are judged as in export parity (fp16 to ~3 digits, int8 at task level).
SELFTEST_TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"max_rel": 1e-3, "cosine": 0.9999, "top1": 1.0, "pixel": 0.999, "miou": 0.99},
    "fp16": {},
    "int8": {},
}


@dataclass(frozen=True)
class ModelCheck:
    """One model's self-test: its output on the golden input against the expected output."""

    file: str
    precision: str
    passed: bool
    max_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float | None
    failures: tuple
    providers: tuple

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failures"], d["providers"] = list(self.failures), list(self.providers)
        return d


@dataclass(frozen=True)
class SelftestResult:
    """The outcome of ``selftest``: files verified, and one ``ModelCheck`` per model."""

    bundle: Path
    files_verified: int
    checks: tuple
    onnxruntime: str

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "bundle": str(self.bundle),
            "passed": self.passed,
            "files_verified": self.files_verified,
            "onnxruntime": self.onnxruntime,
            "models": [c.to_dict() for c in self.checks],
        }


def tolerance(precision: str) -> dict:
    """The self-test's tolerances for a precision: export parity's, tightened by ``SELFTEST_TOLERANCES``."""
    from .compare import TOLERANCES

    return {**TOLERANCES.get(precision, TOLERANCES["fp32"]), **SELFTEST_TOLERANCES.get(precision, {})}


def selftest(bundle: str | os.PathLike, providers: Sequence | str | None = None) -> SelftestResult:
    """Check a bundle's files against its manifest, then each model's output on the golden input.

    Args:
        bundle: the bundle folder, or its ``bundle.json``.
        providers: execution providers (short names such as ``"cpu"``, ``"coreml"``, ``"nnapi"``, or onnxruntime
            names), default CPU. Testing on the provider the app will use is the point.

    Returns:
        ``SelftestResult``; ``passed`` is True when every model matches within its tolerance.

    Raises:
        ArtifactError: not a bundle, a file missing or different from the manifest (damaged or edited copy),
            a path in the manifest outside the bundle folder, or a model onnxruntime cannot load or run.
    """
    import onnxruntime as ort

    def run_here(root: Path, entries: list, golden: dict) -> list:
        return [_run_model(root, entry, golden, providers) for entry in entries]

    return selftest_with(bundle, run_here, ort.__version__)


def selftest_with(bundle: str | os.PathLike, run_models, runtime: str) -> SelftestResult:
    """The self-test with the models run elsewhere (another runtime: Node, a browser), judged here alike.

    ``run_models(root, entries, golden)`` gets the bundle folder, the manifest's model entries and the golden
    arrays, and returns one ``(output array, providers tuple)`` per entry, in order. Files are verified first,
    and each output is judged by ``judge`` with the same per-precision tolerances as the onnxruntime self-test.
    """
    root = Path(bundle)
    if root.is_file() and root.name == BUNDLE_MANIFEST:
        root = root.parent
    manifest = read_bundle_manifest(root)
    verified = verify_files(root, manifest)
    golden = _read_golden(root, manifest)
    for entry in manifest["models"]:
        inside(root, entry["file"], "model file")
        if entry["input"] not in golden or entry["expected"] not in golden:
            raise ArtifactError(
                f"{root}: golden data lacks '{entry['input']}' or '{entry['expected']}'; copy the bundle again"
            )
    outputs = run_models(root, list(manifest["models"]), golden)
    checks = tuple(
        judge(entry, golden[entry["expected"]], got, providers)
        for entry, (got, providers) in zip(manifest["models"], outputs)
    )
    return SelftestResult(root, verified, checks, runtime)


def _read_golden(root: Path, manifest: dict) -> dict[str, np.ndarray]:
    """The golden arrays the models use, each checked from its .npy header before it is loaded."""
    path = inside(root, manifest["golden"]["file"], "golden data file")
    headers = golden_headers(path)
    check_golden(path.name, headers, manifest["models"])
    needed = {k for entry in manifest["models"] for k in (entry["input"], entry["expected"])}
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in sorted(needed)}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{root}: cannot read the golden data ({exc}); copy the bundle again") from None


#: What golden arrays may hold: float inputs and outputs, uint8 pixels (nothing that needs pickle).
_GOLDEN_DTYPES = ("float16", "float32", "float64", "uint8")


def golden_headers(path: Path) -> dict[str, tuple[tuple, np.dtype]]:
    """``{name: (shape, dtype)}`` of the arrays in a golden .npz, read from each member's .npy header (the data
    is not read: a 1.5 MB file can hold a 1.5 GB array of zeros).

    Raises:
        ArtifactError: not a zip of .npy arrays, or a header numpy cannot read.
    """
    fix = "copy the bundle again"
    headers = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    raise ArtifactError(f"{path.name}: member {info.filename!r} is not a .npy array; {fix}")
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = {
                        (1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0,
                    }.get(version)
                    if read is None:  # 3.0 is for structured types with unicode names: not golden data
                        raise ArtifactError(
                            f"{path.name}: member {info.filename!r} is a .npy of version "
                            f"{version[0]}.{version[1]}; {fix}"
                        )
                    shape, _, dtype = read(member)
                headers[info.filename[: -len(".npy")]] = (tuple(shape), dtype)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactError(f"{path.name}: cannot read the golden data ({exc}); {fix}") from None
    return headers


def check_golden(name: str, headers: dict, models: Sequence[dict]) -> None:
    """Each array the models use against its model entry and the size limit, before any is loaded.

    Inputs must be 4-D, of a float or uint8 type, with the entry's fixed ``input_shape`` axes; expected outputs
    float, one row per input row; none over ``EDGECNN_MAX_INPUT_ELEMENTS`` values.

    Raises:
        ArtifactError: naming the golden file, the array and what is wrong with it.
    """
    fix = "copy the bundle again"
    for entry in models:
        for key in (entry["input"], entry["expected"]):
            if key not in headers:
                raise ArtifactError(f"{name} lacks the array '{key}' that {entry['file']} needs; {fix}")
            shape, dtype = headers[key]
            if dtype.hasobject or dtype.name not in _GOLDEN_DTYPES:
                raise ArtifactError(
                    f"{name}: array '{key}' is of type {dtype} (golden data is float or uint8; it "
                    f"is never loaded with pickle); {fix}"
                )
            try:
                check_input_shape(shape, f"{name}: array '{key}'")
            except InputError as exc:
                raise ArtifactError(str(exc)) from None
        (in_shape, _), (out_shape, out_type) = headers[entry["input"]], headers[entry["expected"]]
        declared = entry.get("input_shape") or [None] * 4
        fixed = [d if isinstance(d, int) and not isinstance(d, bool) else None for d in declared]
        if (
            len(in_shape) != 4
            or len(fixed) != 4
            or not in_shape[0]
            or any(d is not None and d != s for d, s in zip(fixed[1:], in_shape[1:]))
        ):
            raise ArtifactError(
                f"{name}: input '{entry['input']}' has shape {list(in_shape)}, but {entry['file']} "
                f"takes {declared}; {fix}"
            )
        if out_type.kind != "f" or not out_shape or out_shape[0] != in_shape[0]:
            raise ArtifactError(
                f"{name}: expected output '{entry['expected']}' is {out_type} of shape "
                f"{list(out_shape)}, not float with one row per input ({in_shape[0]}); {fix}"
            )


def _run_model(root: Path, entry: dict, golden: dict, providers) -> tuple:
    from .runner import open_runner

    path = inside(root, entry["file"], "model file")
    # open_runner refuses a provider this onnxruntime lacks or drops, instead of falling back to CPU
    runner = open_runner(path, providers=providers or "cpu", precision=entry["precision"])
    try:
        got = run_golden(runner, golden[entry["input"]])
    except InputError as exc:
        raise ArtifactError(f"{path.name}: {exc}") from None
    return got, tuple(runner.providers)


def judge(entry: dict, expected: np.ndarray, got: np.ndarray, providers: Sequence = ()) -> ModelCheck:
    """One model's output on the golden input against its expected output, within the entry's tolerance
    (or the precision's ``tolerance``); any runtime's outputs are judged by this one function."""
    from .compare import compare

    got = np.asarray(got)
    if got.shape != expected.shape:
        return ModelCheck(
            entry["file"],
            entry["precision"],
            False,
            float("inf"),
            float("inf"),
            0.0,
            None,
            (f"output shape {list(got.shape)} != expected {list(expected.shape)}",),
            tuple(providers),
        )
    tol = entry.get("tolerance") or tolerance(entry["precision"])
    report = compare(
        expected, got, task=entry.get("task", "classification"), precision=entry["precision"], tolerances=tol
    )
    return ModelCheck(
        entry["file"],
        entry["precision"],
        report.passed,
        report.max_abs,
        report.max_rel,
        report.cosine,
        report.top1_agreement,
        report.failures,
        tuple(providers),
    )


def verify_files(root: Path, manifest: dict) -> int:
    """Compare every file listed in the manifest with its size and sha256; raise naming all that differ.

    Raises:
        ArtifactError: a listed name that is absolute or leads outside ``root`` (checked before any is read),
            files missing or different, or models and golden data the manifest does not hash.
    """
    records = manifest.get("files", {})
    paths = {name: inside(root, name, "bundle file") for name in records}
    bad = []
    for name, record in records.items():
        path = paths[name]
        if not path.is_file():
            bad.append(f"{name} (missing)")
        elif path.stat().st_size != record.get("size") or sha256_file(path) != record.get("sha256"):
            bad.append(f"{name} (sha256 differs)")
    if bad:
        raise ArtifactError(
            f"bundle {root} does not match its {BUNDLE_MANIFEST}: {', '.join(bad)}; the copy is "
            "damaged or was edited: copy the bundle again"
        )
    listed = set(records)
    unlisted = [e["file"] for e in manifest["models"] if e["file"] not in listed]
    if unlisted or "golden" not in manifest or manifest["golden"]["file"] not in listed:
        raise ArtifactError(
            f"{root / BUNDLE_MANIFEST} does not list the hashes of all its models and golden data; remake the bundle"
        )
    return len(listed)


def read_bundle_manifest(root: Path) -> dict:
    """``root/bundle.json``, its types and keys checked (``core.documents.read_bundle_json``): a malformed one is
    one ``ArtifactError`` naming the file and the key."""
    return read_bundle_json(root)


def run_golden(runner, array: np.ndarray) -> np.ndarray:
    """The first output of ``runner`` (a ``runtime.runner.Runner``) for all rows of ``array``
    (``session.run_batched``: chunks the graph takes).

    Raises:
        InputError: ``array``'s shape does not fit the graph's input.
    """
    shape = list(runner.inputs[0].shape)
    if array.ndim != len(shape) or any(isinstance(d, int) and d != a for d, a in zip(shape[1:], array.shape[1:])):
        raise InputError(f"the golden input has shape {list(array.shape)} but the model takes {shape}")
    return run_batched(runner, array, outputs=None, chunk=len(array))[0]
