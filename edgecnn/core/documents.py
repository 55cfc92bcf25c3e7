"""The readers of the JSON documents edgecnn reads back (standard library only, so the torch-free runtime uses them).

One reader per document, each checking the types and keys its readers rely on, so that a malformed file is one
line naming the file and the key — never a ``KeyError`` or ``AttributeError`` deep inside a command:

- ``read_export_manifest``: an export folder's ``manifest.json`` (``int8_record`` for its ``int8`` part);
- ``read_bundle_json``: a bundle's ``bundle.json``.

The card values stored in an ``.onnx`` file are checked by ``edgecnn.core.card.ModelCard.from_metadata``.

The documents are read as UTF-8 (a byte-order mark is allowed, as Windows editors write one); another encoding is
refused, naming it when it is UTF-16/32. Keys a reader does not use are not checked, and extra keys are allowed,
so documents written by the current release, and by later ones that add keys, read.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArtifactError

#: No manifest edgecnn writes comes near this; a larger "manifest" is not one, and is not read into memory.
MAX_DOCUMENT_BYTES = 64 << 20

EXPORT_MANIFEST = "manifest.json"
BUNDLE_JSON = "bundle.json"


# --- the schema language: plain Python values describe what a document holds --------------------------------
#
#   str, int, bool, dict, list      a value of that JSON type (int excludes true/false)
#   float                           a number: an integer or a decimal, not true/false
#   None                            null
#   (a, b)                          either
#   {"key": spec}                   an object holding these keys (Opt(spec): the key may be absent); extra keys pass
#   [spec]                          a list of values, each matching spec
#   MapOf(spec)                     an object whose every value matches spec
#   Choice("a", "b")                one of these values
#   Where(spec, test, what)         spec, and test(value) is true ("what" says what was expected)


@dataclass(frozen=True)
class Opt:
    spec: Any


@dataclass(frozen=True)
class MapOf:
    spec: Any


@dataclass(frozen=True)
class Choice:
    values: tuple

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class Where:
    spec: Any
    test: Callable[[Any], bool]
    what: str


class Mismatch(Exception):
    """Where a value is not what its schema says: ``key`` (``artifacts[0].parity``), and what was expected."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"key '{key}' {detail}" if key else detail)
        self.key, self.detail = key, detail


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "a list",
    None: "null",
}


def describe(spec: Any) -> str:
    """What a schema expects, in words (``"a string or null"``)."""
    if isinstance(spec, tuple):
        return " or ".join(describe(s) for s in spec)
    if isinstance(spec, list):
        return f"a list of {_plural(describe(spec[0]))}"
    if isinstance(spec, (MapOf, Opt)) or isinstance(spec, dict):
        return "an object"
    if isinstance(spec, Choice):
        return " or ".join(json.dumps(v) for v in spec.values)
    if isinstance(spec, Where):
        return spec.what
    return _TYPE_NAMES.get(spec, str(spec))


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article) :] + ("s" if not text.endswith("s") else "")
    return text


def shown(value: Any, limit: int = 40) -> str:
    """A value as a message quotes it: ``'abc'``, ``5``, ``a list``, ``an object``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    if isinstance(value, dict):
        return "an object"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_number(value: Any) -> bool:
    """An int or float, not a bool (JSON ``true`` is not a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def _matches_type(value: Any, spec: Any) -> bool:
    if spec is None:
        return value is None
    if spec is float:
        return is_number(value)
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, spec)


def check(value: Any, spec: Any, key: str = "") -> None:
    """Raise ``Mismatch`` naming the first key (dotted, with list indices) whose value does not match ``spec``."""
    if isinstance(spec, tuple):
        for option in spec:
            try:
                check(value, option, key)
                return
            except Mismatch as exc:
                if exc.key != key:  # the right kind, wrong inside: that error is the useful one
                    raise
        raise Mismatch(key, f"must be {describe(spec)}, got {shown(value)}")
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise Mismatch(key, f"must be an object, got {shown(value)}")
        for name, sub in spec.items():
            inner = f"{key}.{name}" if key else name
            if name not in value:
                if isinstance(sub, Opt):
                    continue
                raise Mismatch(inner, "is missing")
            check(value[name], sub.spec if isinstance(sub, Opt) else sub, inner)
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            raise Mismatch(key, f"must be {describe(spec)}, got {shown(value)}")
        for i, item in enumerate(value):
            check(item, spec[0], f"{key}[{i}]")
        return
    _check_leaf(value, spec, key)


def _check_leaf(value: Any, spec: Any, key: str) -> None:
    if isinstance(spec, MapOf):
        if not isinstance(value, dict):
            raise Mismatch(key, f"must be an object, got {shown(value)}")
        for name, item in value.items():
            check(item, spec.spec, f"{key}.{name}" if key else name)
    elif isinstance(spec, Choice):
        if value not in spec.values or isinstance(value, bool) != any(isinstance(v, bool) for v in spec.values):
            raise Mismatch(key, f"must be {describe(spec)}, got {shown(value)}")
    elif isinstance(spec, Where):
        try:
            check(value, spec.spec, key)
        except Mismatch as exc:
            if exc.key != key:  # wrong inside (an item of a list): that error is the useful one
                raise
            raise Mismatch(key, f"must be {spec.what}, got {shown(value)}") from None
        if not spec.test(value):
            raise Mismatch(key, f"must be {spec.what}, got {shown(value)}")
    elif not _matches_type(value, spec):
        raise Mismatch(key, f"must be {describe(spec)}, got {shown(value)}")


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

#: What an export manifest holds, as far as edgecnn's readers (mobile, web, sweep, int8-report, tools) use it.
EXPORT_MANIFEST_SCHEMA = {
    "edgecnn_manifest": Choice(1),
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
    return checked(manifest, EXPORT_MANIFEST_SCHEMA, str(path), _EXPORT_FIX)


_AGREEMENT = {
    "sqnr_db": float,
    "samples": int,
    "top1": Opt(float),
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

#: What ``int8-report`` reads of a manifest's ``int8`` record (convert/int8.py's ``Int8Result.to_dict``).
INT8_RECORD_SCHEMA = {
    "kept": str,
    "decision": str,
    "calibration_method": str,
    "calibration_images": int,
    "candidate": Opt(str),
    "target": Opt(MapOf(float)),
    "judged": Opt(bool),
    "agreement": Opt((None, _AGREEMENT)),
    "calibration_candidates": Opt(MapOf({"top1": Opt(float), "miou": Opt(float), "kl": Opt(float)})),
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
