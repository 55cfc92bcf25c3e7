"""The schema language the document readers check JSON against (standard library only): plain Python values
describe what a document holds, and ``check`` names the first key that does not match.

``edgecnn.core.documents`` holds the schemas of edgecnn's documents and their readers; ``edgecnn.core.card``
checks a card's values with the same language.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
