"""What ``choose`` compares: the candidate files of an export folder or a bundle, and the golden data they are
judged against.

An export folder lists its files in ``manifest.json`` (format, precision, file) and holds ``golden.npz``
(``runtime.golden``: the held-out parity photos and PyTorch's fp32 outputs on them). A bundle lists its models in
``bundle.json`` and holds each model's own expected output in its ``golden.npz`` (``runtime.selftest``): there the
fp32 model's output is the reference. Every path read comes from those documents and must stay inside the folder
(``core.paths.inside``).

The embedded-preprocessing twins (``NAME.<precision>.nhwc_uint8.onnx``, made by ``export --embed-preprocess``)
take uint8 NHWC pixels, not the float input every other file takes: they are not candidates, and are listed as
left out with that reason.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.artifact import MANIFEST, read_manifest
from ...core.documents import BUNDLE_JSON
from ...core.errors import ArtifactError, InputError
from ...core.files import sha256_file
from ...core.paths import inside
from ..golden import GOLDEN_FILE, Golden, from_bundle, load_golden
from ..selftest import check_golden, golden_headers, read_bundle_manifest

#: A file's format by its suffix, where a document does not say it (a bundle; manifests before formats).
SUFFIX_FORMATS = {".onnx": "onnx", ".ort": "onnx", ".tflite": "tflite", ".pte": "pte", ".mlpackage": "coreml"}
#: The suffix ``deploy.embed`` gives the twins (the runtime room cannot import deploy).
TWIN_SUFFIX = ".nhwc_uint8.onnx"
TWIN_REASON = (
    "preprocessing embedded: takes uint8 NHWC pixels, not the float input the others take, so it is not a "
    "candidate (its float source is)"
)
VNNI_NOTE = "exact only on VNNI/ARM CPUs (8-bit weights saturate int16 sums on x86 without VNNI)"


@dataclass(frozen=True)
class Candidate:
    """One file to compare: where it is, its format and precision, what to say about it, and the one runtime it
    was made for where the export made it for one alone (``export --int8-for``: ``NAME.int8.openvino.onnx``)."""

    file: str
    path: Path
    format: str
    precision: str
    notes: tuple = ()
    made_for: str | None = None


@dataclass(frozen=True)
class Source:
    """An export folder or a bundle, read.

    Attributes:
        kind: ``"export"`` or ``"bundle"``.
        random_weights: the weights are untrained (int8 verdicts are then not binding); ``None``: read from each
            file's card (a bundle does not record it).
        left_out: ``(file, reason)`` of the files that are not candidates.
    """

    folder: Path
    kind: str
    model: str
    task: str
    random_weights: bool | None
    golden: Golden
    candidates: tuple
    left_out: tuple


def read_source(folder: str | os.PathLike) -> Source:
    """Read an export folder (``manifest.json``) or a bundle (``bundle.json``), and its golden data.

    Raises:
        InputError: no such folder, or one that is neither.
        ArtifactError: a document or golden file that cannot be read, a path that leads outside the folder.
    """
    folder = Path(folder)
    if folder.is_file() and folder.name in (MANIFEST, BUNDLE_JSON):
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{folder}: no such export folder or bundle")
    if (folder / BUNDLE_JSON).is_file():
        return _from_bundle(folder)
    if (folder / MANIFEST).is_file():
        return _from_export(folder)
    raise InputError(
        f"{folder} holds neither {MANIFEST} (an export) nor {BUNDLE_JSON} (a bundle); give the folder "
        "'edgecnn export' wrote, or a model name"
    )


def format_of(file: str) -> str:
    """The format a file's suffix names (``"onnx"`` for an unknown one: the runners treat it as ONNX)."""
    return SUFFIX_FORMATS.get(Path(file).suffix.lower(), "onnx")


def is_twin(file: str, parity: dict | None = None) -> bool:
    """An embedded-preprocessing twin: its name says so, or its parity was judged against another file."""
    return file.endswith(TWIN_SUFFIX) or bool((parity or {}).get("reference"))


def _from_export(folder: Path) -> Source:
    manifest = read_manifest(folder)
    golden_file = (manifest.get("golden") or {}).get("file") or GOLDEN_FILE
    golden = load_golden(inside(folder, golden_file, "golden data file"))
    eight_bit = _weight_bits(manifest.get("int8")) == 8
    made_for = _made_for(manifest.get("int8"))
    candidates, left_out = [], []
    for entry in manifest.get("artifacts") or []:
        file, precision = entry["file"], entry["precision"]
        if is_twin(file, entry.get("parity")):
            left_out.append((file, TWIN_REASON))
            continue
        fmt = entry.get("format") or format_of(file)
        notes = (VNNI_NOTE,) if fmt == "onnx" and precision == "int8" and eight_bit else ()
        notes += (f"int8 made for {made_for[file]}: chosen on its timing there",) if file in made_for else ()
        path = inside(folder, file, "model file")
        candidates.append(Candidate(file, path, fmt, precision, notes, made_for.get(file)))
    random = (manifest.get("weights") or {}).get("source") == "random"
    return Source(
        folder, "export", manifest["model"], manifest["task"], random, golden, tuple(candidates), tuple(left_out)
    )


def _made_for(record: dict | None) -> dict:
    """file → runtime of the int8 files made for one further runtime (the manifest's ``int8.runtimes``)."""
    runtimes = (record or {}).get("runtimes") or {}
    return {r["file"]: name for name, r in runtimes.items() if isinstance(r, dict) and r.get("file")}


def _weight_bits(record: dict | None) -> int | None:
    """The ONNX int8 file's weight bits, from the manifest's int8 record (at its top, or in its ``form``)."""
    if not record:
        return None
    return record.get("weight_bits") or (record.get("form") or {}).get("weight_bits")


def _from_bundle(folder: Path) -> Source:
    manifest = read_bundle_manifest(folder)
    models = list(manifest["models"])
    golden_path = inside(folder, manifest["golden"]["file"], "golden data file")
    check_golden(golden_path.name, golden_headers(golden_path), models)  # headers checked before any array loads
    floats = [e for e in models if e["input"] != "pixels"]
    base = next((e for e in floats if e["precision"] == "fp32"), None)
    if base is None:
        raise ArtifactError(
            f"{folder}: the bundle holds no fp32 model, whose output the others are judged against; "
            "bundle the fp32 file too"
        )
    try:
        with np.load(golden_path, allow_pickle=False) as data:
            golden = from_bundle(data[base["input"]], data[base["expected"]])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{golden_path}: cannot read the golden data ({exc}); copy the bundle again") from None
    records = manifest.get("files") or {}
    candidates = [_bundle_candidate(folder, e, records.get(e["file"])) for e in floats]
    left_out = [(e["file"], TWIN_REASON) for e in models if e not in floats]
    return Source(
        folder, "bundle", manifest["model"], manifest["task"], None, golden, tuple(candidates), tuple(left_out)
    )


def _bundle_candidate(folder: Path, entry: dict, record: dict | None) -> Candidate:
    """A bundle's model; a file that differs from its hash in ``bundle.json`` is still judged, and said to differ
    (the self-test refuses the whole bundle; a comparison shows what the edited file does)."""
    path = inside(folder, entry["file"], "model file")
    notes = ()
    if (
        record
        and path.is_file()
        and (path.stat().st_size != record.get("size") or sha256_file(path) != record.get("sha256"))
    ):
        notes = ("differs from its sha256 in bundle.json: an edited or damaged copy",)
    return Candidate(entry["file"], path, format_of(entry["file"]), entry["precision"], notes)
