"""A Core ML ``.mlpackage`` read structurally: no coremltools, no torch, no protobuf package — the standard library.

An ``.mlpackage`` is a folder: ``Manifest.json`` names the root item (the model's specification, a protobuf,
``Data/com.apple.CoreML/model.mlmodel``) and the weights (``weights/weight.bin``). The specification is small (the
weights live in the blob file), so it is decoded here with a protobuf wire reader and the field numbers of Apple's
``Model.proto``, ``FeatureTypes.proto`` and ``MIL.proto`` (the ones coremltools 9.0 ships). That is what lets the
device install, and a Linux box that cannot run Core ML, still say what a file takes and gives, which operators its
ML program holds, which precision its weights are stored in, and which card it carries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ...core.card import PREFIX, ModelCard, class_axis
from ...core.errors import ArtifactError
from ...core.files import size_bytes

#: the largest specification read: an ML program's ops without their weights stay far below this
MAX_SPEC_BYTES = 256 << 20
#: ``ArrayFeatureType.ArrayDataType`` (FeatureTypes.proto) → numpy's name
ARRAY_DTYPES = {65568: "float32", 65600: "float64", 65552: "float16", 131104: "int32", 131080: "int8"}
#: ``MILSpec.DataType`` (MIL.proto) → numpy's name (the ones weights are stored in)
MIL_DTYPES = {1: "bool", 2: "string", 10: "float16", 11: "float32", 12: "float64", 13: "bfloat16", 21: "int8"}
MIL_DTYPES |= {22: "int16", 23: "int32", 24: "int64", 25: "int4", 31: "uint8", 32: "uint16", 35: "uint4"}
#: ``Model.specificationVersion`` → the oldest OS that loads it (coremltools' ``target`` table)
MINIMUM_OS = {4: "iOS13", 5: "iOS14", 6: "iOS15", 7: "iOS16", 8: "iOS17", 9: "iOS18"}
#: the ``Model`` oneof fields this reader names (Model.proto)
MODEL_TYPES = {500: "neuralNetwork", 502: "mlProgram", 202: "pipeline"}
_LOW_BITS = {"int8", "uint8", "int4", "uint4"}


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of one protobuf message: an int for varints and fixed widths, the bytes of a
    length-delimited field (a string, a sub-message, a packed list)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("a field runs past its message")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        else:
            raise ValueError(f"wire type {wire} is not used by Core ML's specification")
        yield number, value


def _all(buf: memoryview, number: int) -> list:
    return [v for n, v in fields(buf) if n == number]


def _one(buf: memoryview, number: int, default=None):
    found = _all(buf, number)
    return found[-1] if found else default  # protobuf: the last occurrence wins


def _text(value) -> str:
    return bytes(value).decode("utf-8", "replace") if value is not None else ""


def _entries(buf: memoryview, number: int) -> dict[str, memoryview]:
    """A protobuf ``map<string, …>`` field: each entry a message of key (1) and value (2)."""
    return {_text(_one(e, 1, b"")): _one(e, 2, memoryview(b"")) for e in _all(buf, number)}


def _ints(value) -> list[int]:
    """A repeated int64 field, packed (bytes) or not (one int per occurrence)."""
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        n, pos = _varint(value, pos)
        out.append(n - (1 << 64) if n >> 63 else n)
    return out


def _feature(buf: memoryview) -> dict:
    """A ``FeatureDescription``: name, and for a multi-array its shape and element type."""
    kind = _one(buf, 3, memoryview(b""))
    array = _one(kind, 5)
    if array is None:
        return {"name": _text(_one(buf, 1)), "shape": None, "dtype": None}
    shape = [d for v in _all(array, 1) for d in _ints(v)]
    return {"name": _text(_one(buf, 1)), "shape": shape, "dtype": ARRAY_DTYPES.get(_one(array, 2, 0))}


def _stored_dtype(value: memoryview) -> str | None:
    """The element type of a ``MILSpec.Value`` whose data lives in the weights file; ``None`` for an immediate."""
    if _one(value, 5) is None:
        return None
    tensor = _one(_one(value, 2, memoryview(b"")), 1, memoryview(b""))
    return MIL_DTYPES.get(_one(tensor, 1, 0), "other")


def _program(buf: memoryview) -> dict:
    """Operator counts by type (every block, nested ones too) and the stored weights by element type."""
    ops: Counter = Counter()
    weights: Counter = Counter()
    opsets = set()
    blocks = []
    for function in _entries(buf, 2).values():
        opsets.add(_text(_one(function, 2)))
        blocks.extend(_entries(function, 3).values())
    while blocks:
        for op in _all(blocks.pop(), 3):
            ops[_text(_one(op, 1))] += 1
            blocks.extend(_all(op, 4))
            for value in _entries(op, 5).values():
                dtype = _stored_dtype(value)
                if dtype is not None:
                    weights[dtype] += 1
    return {"ops": dict(sorted(ops.items())), "weights": dict(sorted(weights.items())), "opsets": sorted(opsets)}


def precision_of(weights: dict[str, int]) -> str:
    """What the stored weights say: ``int8`` (8-bit or narrower integer weights, dequantized at load), ``fp16``,
    ``fp32``, or ``mixed`` (float16 and float32 both)."""
    if _LOW_BITS & set(weights):
        return "int8"
    halves, singles = weights.get("float16", 0), weights.get("float32", 0)
    if halves and singles:
        return "mixed"
    return "fp16" if halves else "fp32"


def root_spec(package: Path) -> Path:
    """The specification file ``Manifest.json`` names as the package's root item."""
    manifest = package / "Manifest.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        item = data["itemInfoEntries"][data["rootModelIdentifier"]]
        spec = package / "Data" / item["path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(
            f"{package.name}: no readable Manifest.json naming its model ({exc}); re-export it"
        ) from None
    if not spec.is_file() or package.resolve() not in spec.resolve().parents:
        raise ArtifactError(f"{package.name}: Manifest.json names {item['path']!r}, which the package lacks")
    return spec


def inspect(path: str | Path) -> dict:
    """What an ``.mlpackage`` holds, read without Core ML.

    Returns:
        ``{"format", "file", "model_type", "spec_version", "minimum_os", "opsets", "inputs", "outputs", "ops",
        "compute_ops", "weights", "precision", "metadata", "card", "size_bytes", "weights_bytes"}``; ``inputs`` and
        ``outputs`` are ``{"name", "shape", "dtype"}`` lists, ``ops`` counts every ML program operator by type
        (``compute_ops`` leaves out the ``const`` ones), ``weights`` counts the tensors stored in the weights file
        by element type, ``card`` is the edgecnn card (``ModelCard.to_metadata()``'s dict) found among the model's
        user-defined metadata.

    Raises:
        ArtifactError: not a package folder, no manifest, or a specification that does not decode.
    """
    package = Path(path)
    if not package.is_dir():
        raise ArtifactError(f"Core ML package not found (an .mlpackage is a folder): {package}")
    spec_file = root_spec(package)
    if spec_file.stat().st_size > MAX_SPEC_BYTES:
        raise ArtifactError(f"{package.name}: its specification is over {MAX_SPEC_BYTES >> 20} MiB; re-export it")
    try:
        return _decoded(package, memoryview(spec_file.read_bytes()))
    except (ValueError, IndexError, TypeError) as exc:  # a damaged field: wrong wire type, cut short
        raise ArtifactError(f"{package.name}: its specification does not decode ({exc}); re-export it") from None


def _decoded(package: Path, model: memoryview) -> dict:
    description = _one(model, 2, memoryview(b""))
    metadata = {k: _text(v) for k, v in _entries(_one(description, 100, memoryview(b"")), 100).items()}
    kind = next((name for number, name in MODEL_TYPES.items() if _one(model, number) is not None), "other")
    program = _program(_one(model, 502)) if kind == "mlProgram" else {"ops": {}, "weights": {}, "opsets": []}
    version = _one(model, 1, 0)
    weights_dir = package / "Data" / "com.apple.CoreML" / "weights"
    return {
        "format": "coreml",
        "file": package.name,
        "model_type": kind,
        "spec_version": version,
        "minimum_os": MINIMUM_OS.get(version, f"specification {version}"),
        "opsets": program["opsets"],
        "inputs": [_feature(f) for f in _all(description, 1)],
        "outputs": [_feature(f) for f in _all(description, 10)],
        "ops": program["ops"],
        "compute_ops": sum(n for op, n in program["ops"].items() if not op.startswith("const")),
        "weights": program["weights"],
        "precision": precision_of(program["weights"]),
        "metadata": metadata,
        "card": {k: v for k, v in metadata.items() if k.startswith(PREFIX)},
        "size_bytes": size_bytes(package),
        "weights_bytes": size_bytes(weights_dir) if weights_dir.is_dir() else 0,
    }


def structural_problems(found: dict, card: ModelCard | None = None) -> list[str]:
    """What in ``inspect``'s account of a package disagrees with the card it should carry (``card``; ``None``: the
    one it carries): an ML program, one float32 input and output under the card's names, the input shape the
    card states (a named axis, the batch, is 1 in the file), the card's class count on the output's axis 1, the
    weights in the card's precision. ``[]`` when it all agrees."""
    carried = ModelCard.from_metadata(found["card"], found["file"])
    if carried is None:
        return ["it carries no edgecnn card in its metadata"]
    card = card or carried
    problems = [] if carried == card else ["the card it carries is not the one it was exported with"]
    if found["model_type"] != "mlProgram":
        problems.append(f"it is a {found['model_type']}, not an ML program")
    want_shape = [d if isinstance(d, int) else 1 for d in card.input_shape]
    for side, want, shape in (("input", card.input_name, want_shape), ("output", card.output_name, None)):
        got = found[side + "s"]
        if len(got) != 1 or got[0]["name"] != want or got[0]["dtype"] != "float32":
            problems.append(f"its {side}s are {got}, not one float32 {want!r}")
        elif shape is not None and got[0]["shape"] != shape:
            problems.append(f"its input shape is {got[0]['shape']}, the card says {shape}")
        elif shape is None and class_axis(got[0]["shape"] or []) not in (None, card.num_classes):
            problems.append(f"its output {got[0]['shape']} does not have the card's {card.num_classes} classes")
    if found["precision"] != card.precision:
        problems.append(f"its weights are {found['weights']} ({found['precision']}), the card says {card.precision}")
    return problems
