"""The edgecnn card inside a ``.tflite`` file, read without loading the model's weights into Python.

A ``.tflite`` file is a flatbuffer whose ``Model.metadata`` list names buffers of free-form bytes; the card is the
one named ``CARD_NAME``, its bytes the UTF-8 JSON of ``ModelCard.to_metadata()``'s dict (the same keys and values
an ``.onnx`` file carries in metadata_props, so ``ModelCard.from_metadata`` reads both alike). LiteRT's generated
reader (``schema_py_generated``, plain API) walks the flatbuffer in place over a memory map: only the card's bytes
are copied, and only up to ``MAX_CARD_BYTES`` (a file that claims a larger card is damaged, or hostile).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path

from ...core.card import PREFIX
from ...core.errors import ArtifactError

#: the metadata entry the card is stored under: ``edgecnn.`` and ``card``, like the card's own keys
CARD_NAME = PREFIX + "card"
#: the largest card read back: real cards (labels of 21k classes included) stay well under 1 MiB
MAX_CARD_BYTES = 8 << 20


def read_card(source: str | os.PathLike | bytes) -> dict[str, str]:
    """The card's metadata dict stored in a ``.tflite`` file (a path, or the file's bytes); ``{}`` without one.

    Call it on a file LiteRT has loaded: the interpreter verifies the flatbuffer, this reader trusts its offsets
    (and still turns a read past the end into an ``ArtifactError``).

    Raises:
        ArtifactError: the card is larger than ``MAX_CARD_BYTES`` or is not a JSON object of strings.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else Path(source).name
    if isinstance(source, (bytes, bytearray)):
        raw = _card_bytes(memoryview(source), name)
    else:
        with open(source, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            raw = _card_bytes(mm, name)
    if raw is None:
        return {}
    try:
        card = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{name}: its {CARD_NAME} metadata is not JSON ({exc}); re-export the file") from exc
    if not isinstance(card, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in card.items()):
        raise ArtifactError(f"{name}: its {CARD_NAME} metadata is not an object of strings; re-export the file")
    return card


def _card_bytes(buf, name: str) -> bytes | None:
    """The card's bytes, or ``None`` when the model names no card."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(buf, 0)
        index = next(
            (
                model.Metadata(i).Buffer()
                for i in range(model.MetadataLength())
                if model.Metadata(i).Name() == CARD_NAME.encode()
            ),
            None,
        )
        if index is None:
            return None
        if not 0 <= index < model.BuffersLength():
            raise ArtifactError(f"{name}: its {CARD_NAME} metadata points at buffer {index}, which does not exist")
        buffer = model.Buffers(index)
        # a buffer past the flatbuffer's 2 GiB reach is stored after it, at an offset into the file
        offset, size = buffer.Offset(), buffer.Size()
        length = size if offset > 1 else buffer.DataLength()
        if length > MAX_CARD_BYTES:
            raise ArtifactError(f"{name}: its {CARD_NAME} metadata claims {length} bytes (at most {MAX_CARD_BYTES})")
        if offset > 1:
            if offset + size > len(buf):
                raise ArtifactError(f"{name}: its {CARD_NAME} metadata lies past the end of the file")
            return bytes(buf[offset : offset + size])
        data = buffer.DataAsNumpy()
        return b"" if isinstance(data, int) else data.tobytes()
    except (IndexError, struct.error, ValueError, TypeError) as exc:
        raise ArtifactError(f"{name}: cannot read its metadata ({exc}); the file is damaged") from exc
