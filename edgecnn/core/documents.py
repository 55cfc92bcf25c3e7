"""The readers of the JSON documents edgecnn reads back (standard library only, so the torch-free runtime uses them).

One reader per document, each checking the types and keys its readers rely on, so that a malformed file is one
line naming the file and the key — never a ``KeyError`` or ``AttributeError`` deep inside a command:

- ``read_export_manifest``: an export folder's ``manifest.json``, version 1 or 2 (``int8_record`` for its ``int8``
  part, ``manifest_options`` for its ``options`` block in version 2's shape whichever version wrote it);
- ``read_bundle_json``: a bundle's ``bundle.json``.

The card values stored in an ``.onnx`` file are checked by ``edgecnn.core.card.ModelCard.from_metadata``.

The documents are read as UTF-8 (a byte-order mark is allowed, as Windows editors write one); another encoding is
refused, naming it when it is UTF-16/32. Keys a reader does not use are not checked, and extra keys are allowed,
so documents written by the current release, and by later ones that add keys, read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .schema import (  # noqa: F401 - the schema language, re-exported for the readers that import it from here
    Choice,
    MapOf,
    Mismatch,
    Opt,
    Where,
    check,
    describe,
    is_finite,
    is_number,
    shown,
)

#: No manifest edgecnn writes comes near this; a larger "manifest" is not one, and is not read into memory.
MAX_DOCUMENT_BYTES = 64 << 20

EXPORT_MANIFEST = "manifest.json"
BUNDLE_JSON = "bundle.json"


# --- reading a JSON file ----------------------------------------------------------------------------------------


def read_json_file(path: str | os.PathLike, fix: str) -> Any:
    """The JSON value in ``path``: UTF-8 (with or without a byte-order mark), at most ``MAX_DOCUMENT_BYTES``.

    Raises:
        ArtifactError: missing, unreadable, too large, not UTF-8 (UTF-16/32 named), or not JSON; the message
            names the file and ends with ``fix`` (what to do).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise ArtifactError(
                f"{path} is {size / 2**20:.0f} MiB, more than any edgecnn document "
                f"({MAX_DOCUMENT_BYTES >> 20} MiB): not one; {fix}"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read {path} ({exc.strerror or exc}); {fix}") from None
    return parse_json(data, str(path), fix)


def parse_json(data: bytes, name: str, fix: str) -> Any:
    """``data`` decoded as UTF-8 and parsed as JSON; one-line ``ArtifactError`` naming ``name`` otherwise."""
    wide = wide_encoding(data)
    if wide:
        raise ArtifactError(f"{name} is {wide} text; edgecnn documents are UTF-8 (save it as UTF-8); {fix}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArtifactError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); {fix}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(
            f"{name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); {fix}"
        ) from None
    except RecursionError:
        raise ArtifactError(f"{name} is not an edgecnn document (nested too deeply); {fix}") from None


def wide_encoding(data: bytes) -> str | None:
    """``"UTF-16"``/``"UTF-32"`` when ``data`` starts with that byte-order mark, or with the zero bytes that
    ASCII text has in those encodings; ``None`` otherwise (UTF-8 text has no zero bytes)."""
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    if len(data) >= 4 and (data[1] == 0 and data[3] == 0 or data[0] == 0 and data[2] == 0):
        return "UTF-16" if data[:4].count(0) == 2 else "UTF-32"
    return None


def checked(value: Any, spec: Any, name: str, fix: str, prefix: str = "") -> Any:
    """``value`` when it matches ``spec``; else one ``ArtifactError`` naming ``name``, the key and ``fix``."""
    try:
        check(value, spec, prefix)
    except Mismatch as exc:
        if not exc.key:
            raise ArtifactError(f"{name} is not {describe(spec)} ({exc}); {fix}") from None
        raise ArtifactError(f"{name}: {exc}; {fix}") from None
    return value


# --- the export manifest (manifest.json) -----------------------------------------------------------------------

_FILE_NAME = Where(str, lambda v: bool(v.strip()), "a file name")
_PARITY = {"passed": bool, "judged": Opt(bool), "failures": Opt([str])}
_ARTIFACT = {
    "file": _FILE_NAME,
    "precision": str,
    "parity": _PARITY,
    "size_bytes": Opt(int),
    "sha256": Opt((str, None)),
    "notes": Opt([str]),
}

#: ``options.int8`` of a version 2 manifest: ``Int8Options``' fields, or null without int8.
_INT8_OPTIONS = (None, {"policy": str, "calib_method": str, "weight_bits": Opt(int)})

#: What an export manifest holds, as far as edgecnn's readers (mobile, web, sweep, int8-report, tools) use it.
#: Version 2 (``options`` is ``ExportOptions.to_dict()``) adds ``options.int8`` as ``_INT8_OPTIONS``; version 1
#: had the flag there (``true``/``"auto"``/``false``) with ``calib_method`` and ``int8_options`` beside it.
EXPORT_MANIFEST_SCHEMA = {
    "edgecnn_manifest": Choice(1, 2),
    "model": str,
    "task": Opt(str),
    "options": Opt(dict),
    "weights": Opt(dict),
    "card": Opt(dict),
    "int8": Opt((None, dict)),
    "artifacts": [_ARTIFACT],
    "bundle": Opt((None, {"folder": _FILE_NAME, "models": Opt([str])})),
    "versions": Opt(dict),
    "warnings": Opt([str]),
}

_EXPORT_FIX = "export again with --force"


def read_export_manifest(folder: str | os.PathLike) -> dict:
    """The ``manifest.json`` of an export folder, checked against ``EXPORT_MANIFEST_SCHEMA``.

    Raises:
        ArtifactError: no manifest, or one that is not UTF-8 JSON of the expected shape (the message names the key).
    """
    path = Path(folder) / EXPORT_MANIFEST
    if not path.exists():
        raise ArtifactError(f"no {EXPORT_MANIFEST} in '{folder}'; is it an edgecnn export folder?")
    manifest = read_json_file(path, _EXPORT_FIX)
    if not isinstance(manifest, dict):
        raise ArtifactError(
            f"{path} is not an edgecnn export manifest (a JSON object), got {shown(manifest)}; {_EXPORT_FIX}"
        )
    checked(manifest, EXPORT_MANIFEST_SCHEMA, str(path), _EXPORT_FIX)
    if manifest["edgecnn_manifest"] >= 2:
        checked(manifest.get("options", {}), {"int8": Opt(_INT8_OPTIONS)}, str(path), _EXPORT_FIX, prefix="options")
    return manifest


def manifest_options(manifest: dict) -> dict:
    """A manifest's ``options`` block as version 2 writes it (``ExportOptions.to_dict()``), whichever version
    wrote it: a version 1 block's ``int8`` flag, ``calib_method`` and ``int8_options`` become ``int8``, the
    ``Int8Options`` fields (``policy``, ``calib_method`` …) or ``None``. Version 1 recorded the resolved class
    count as ``num_classes``; the card (``manifest["card"]``) holds it in both versions."""
    options = dict(manifest.get("options") or {})
    if manifest.get("edgecnn_manifest", 1) >= 2:
        return options
    flag, method = options.pop("int8", False), options.pop("calib_method", None)
    int8 = options.pop("int8_options", None)
    if int8 is None and flag:
        int8 = {"policy": "static" if flag is True else flag, "calib_method": method or "minmax"}
    options["int8"] = int8 if flag else None
    return options


_AGREEMENT = {
    "sqnr_db": float,
    "samples": int,
    "top1_agreement": Opt(float),
    "pixel_agreement": Opt(float),
    "mean_iou": Opt(float),
    "top1": Opt(float),  # top1, pixel, miou: the names records had before the int8 step took runtime.compare's
    "pixel": Opt(float),
    "miou": Opt(float),
    "kl": Opt(float),
}
_SPEED_GATE = {
    "fp32_ms": float,
    "candidates_ms": MapOf(float),
    "ratios": MapOf(float),
    "threads": int,
    "batch": int,
    "vnni": (bool, None),
    "round_trips": Opt(MapOf({"count": int, "ops": MapOf(int)})),
    "causes": Opt([str]),
}

#: What ``int8-report`` reads of a manifest's ``int8`` record (convert/int8/build.py's ``Int8Result.to_dict``).
INT8_RECORD_SCHEMA = {
    "kept": str,
    "decision": str,
    "calibration_method": str,
    "calibration_images": int,
    "candidate": Opt(str),
    "target": Opt(MapOf(float)),
    "judged": Opt(bool),
    "agreement": Opt((None, _AGREEMENT)),
    "calibration_candidates": Opt(
        MapOf(
            {
                "top1_agreement": Opt(float),
                "mean_iou": Opt(float),
                "top1": Opt(float),
                "miou": Opt(float),
                "kl": Opt(float),
            }
        )
    ),
    "form": Opt(
        {
            "hardswish_decomposed": Opt(int),
            "hardsigmoid_decomposed": Opt(int),
            "scales_folded": Opt(int),
            "biases_corrected": Opt(int),
        }
    ),
    "sensitivity": Opt(
        {
            "layers": int,
            "most_sensitive": [
                {"node": str, "op_type": str, "sqnr_db": float, "loss_db": float, "weight_sqnr_db": Opt((float, None))}
            ],
        }
    ),
    "fallback": Opt({"nodes": Opt([str]), "rounds": Opt([{"nodes": int, "agreement": _AGREEMENT}])}),
    "speed_gate": Opt((None, _SPEED_GATE)),
    "warnings": Opt([str]),
    "notes": Opt([str]),
}


def int8_record(folder: str | os.PathLike) -> dict | None:
    """The ``int8`` record of an export folder's manifest (``None`` when it was exported without int8), checked
    against ``INT8_RECORD_SCHEMA``; raises ``ArtifactError`` naming the key that is wrong."""
    manifest = read_export_manifest(folder)
    record = manifest.get("int8")
    if record is None:
        return None
    return checked(record, INT8_RECORD_SCHEMA, str(Path(folder) / EXPORT_MANIFEST), _EXPORT_FIX, prefix="int8")


# --- the bundle manifest (bundle.json) ---------------------------------------------------------------------------

_BUNDLE_MODEL = {
    "file": _FILE_NAME,
    "precision": str,
    "input": str,
    "expected": str,
    "task": Opt(str),
    "tolerance": Opt((None, MapOf(float))),
    "input_shape": Opt(list),
    "layout": Opt(str),
}

#: What ``bundle.json`` holds, as selftest, web and the Node runner read it.
BUNDLE_SCHEMA = {
    "edgecnn_bundle": Choice(1),
    "model": Opt(str),
    "task": Opt(str),
    "labels": Opt({"file": _FILE_NAME, "names": Opt(bool)}),
    "golden": {"file": _FILE_NAME, "images": Opt([str])},
    "models": Where([_BUNDLE_MODEL], bool, "a non-empty list of models"),
    "files": MapOf({"size": int, "sha256": str}),
}

_BUNDLE_FIX = "copy the bundle again, or remake it with 'edgecnn export NAME --bundle'"


def read_bundle_json(root: str | os.PathLike) -> dict:
    """``root/bundle.json``, checked against ``BUNDLE_SCHEMA`` (paths are not resolved here: callers use
    ``core.paths.inside`` on each).

    Raises:
        ArtifactError: no such folder, no bundle.json, or one that is not UTF-8 JSON of the expected shape.
    """
    root = Path(root)
    path = root / BUNDLE_JSON
    if not root.exists():
        raise ArtifactError(f"{root}: no such bundle folder")
    if not path.is_file():
        raise ArtifactError(
            f"{root} is not an edgecnn bundle (no {BUNDLE_JSON}); make one with 'edgecnn export NAME --bundle'"
        )
    manifest = read_json_file(path, _BUNDLE_FIX)
    if not isinstance(manifest, dict) or "edgecnn_bundle" not in manifest:
        raise ArtifactError(
            f"{path} is not an edgecnn bundle manifest (a JSON object with edgecnn_bundle: 1); {_BUNDLE_FIX}"
        )
    return checked(manifest, BUNDLE_SCHEMA, str(path), _BUNDLE_FIX)
