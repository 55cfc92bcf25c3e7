"""Habits that keep the code readable (issue 29): size limits, no string imports, no stale references.

The import layers themselves are import-linter's contract in pyproject.toml (`lint-imports`, run by .ci/run);
tests/test_boundary.py keeps the torch-free promise checked at run time too.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edgecnn"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "node_modules" not in p.parts)


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_over_60_lines():
    """Counted from ``def`` to the function's last line, decorators excluded."""
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_edgecnn_modules_are_imported_by_name_not_by_string():
    """import-linter cannot see ``importlib.import_module("edgecnn...")``: only the package's lazy face may use it."""
    found = []
    for path in _modules():
        if path == PACKAGE / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and _called(node) in ("import_module", "__import__"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"string imports outside edgecnn/__init__.py: {found}"


def _called(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


# --- references in prose: every module and file named exists ----------------------------------------------------

_DOTTED = re.compile(r"(?<![\w./-])edgecnn(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_FILE = re.compile(r"(?<![\w./-])((?:edgecnn|tools|tests|docs)/[A-Za-z0-9_./-]*[A-Za-z0-9_])")


def _card_keys() -> set[str]:
    from edgecnn.core.card import ModelCard

    return {f.name for f in __import__("dataclasses").fields(ModelCard)} | {"extra", "labels_file"}


def _texts() -> list[tuple[str, str]]:
    """(where, text): the docstrings and comments of the package and tools, the README and docs/."""
    texts = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in _modules()]
    texts += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted((ROOT / "tools").glob("*.py"))]
    texts += [("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))]
    texts += [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted((ROOT / "docs").glob("*.md"))]
    return texts


def _resolves(dotted: str) -> bool:
    """``edgecnn.a.b.C``: the longest module prefix exists and the rest are its attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            obj = importlib.import_module(name)
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


def _is_module_reference(dotted: str, card_keys: set[str]) -> bool:
    """Card keys (``edgecnn.mean``) and public names on the package (``edgecnn.export``) are not module paths."""
    second = dotted.split(".")[1]
    import edgecnn

    metadata_keys = {"model_sha256"}  # keys edgecnn writes into Parquet metadata, spelled like module paths
    return not {second} & (card_keys | metadata_keys | set(dir(edgecnn)) | set(edgecnn.__all__))


@pytest.fixture(scope="module")
def texts():
    return _texts()


def test_every_module_named_in_prose_exists(texts):
    keys = _card_keys()
    stale = sorted(
        {
            f"{where}: {name}"
            for where, text in texts
            for name in _DOTTED.findall(text)
            if _is_module_reference(name, keys) and not _resolves(name)
        }
    )
    assert not stale, "names of modules that do not exist:\n" + "\n".join(stale)


def _placeholder(path: str) -> bool:
    """``exported/NAME/``, ``tests/reference/MODEL.json``, ``*.onnx``: a pattern, not a file."""
    return any(ch in path for ch in "*{<") or any(part.isupper() for part in re.split(r"[/.]", path))


def test_every_file_named_in_prose_exists(texts):
    stale = sorted(
        {
            f"{where}: {path}"
            for where, text in texts
            for path in _FILE.findall(text)
            if not _placeholder(path) and not (ROOT / path).exists()
        }
    )
    assert not stale, "paths that do not exist:\n" + "\n".join(stale)


_FROM_IMPORT = re.compile(r"from (edgecnn[\w.]*) import ([\w, ]+)")


def _importable(module, dotted: str) -> bool:
    """A name a ``from module import name`` finds: an attribute, or a submodule of a package."""
    name = dotted.rsplit(".", 1)[1]
    return hasattr(module, name) or (hasattr(module, "__path__") and importlib.util.find_spec(dotted) is not None)


def test_every_import_shown_in_prose_works(texts):
    """``from edgecnn.x import a, b`` in the README, docs and docstrings: each name is importable from there."""
    broken = []
    for where, text in texts:
        for module, names in _FROM_IMPORT.findall(text):
            if not _resolves(module):
                broken.append(f"{where}: {module}")
                continue
            mod = importlib.import_module(module)
            names = [n.split()[0] for n in names.split(",") if n.strip()]  # "a as b": the name imported is a
            broken += [f"{where}: {module}.{n}" for n in names if not _importable(mod, f"{module}.{n}")]
    assert not broken, "imports shown that do not work:\n" + "\n".join(sorted(set(broken)))
