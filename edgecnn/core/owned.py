"""What edgecnn wrote in a folder, so that ``--force`` replaces only that (standard library only).

Every folder edgecnn writes whole (export, mobile, web, bundle, sweep) gets a listing, ``.edgecnn-files.json``:
the writer and every file it put there, as paths relative to the folder. A folder made before listings existed
is recognised by the record its writer always left (an export's ``manifest.json``, mobile's ``report.json``, a
bundle's ``bundle.json``, a web app's ``card.json``, a sweep's ``sweep.json``): the files that record names, plus
the fixed files that writer adds, are edgecnn's. A sub-folder with a listing or record of its own (``mobile/``
inside an export, ``bundle/``) is judged by its own. Anything else — a user's notes, photos, a checkpoint put
there by hand, a folder with no record at all — is *foreign*, and a folder holding foreign files is never
replaced, whatever the flags.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

LISTING = ".edgecnn-files.json"

# the fixed files each writer adds beside the files its record names (older folders carry no listing)
_WEB_FIXED = ("index.html", "app.js", "preprocess.mjs", "_headers", "labels.txt")
_MOBILE_FIXED = ("report.txt",)
_BUNDLE_FIXED = ("labels.txt", "golden.npz")


def write_listing(folder: str | os.PathLike, writer: str, files: list[str] | None = None) -> Path:
    """Record the files ``writer`` (``export``, ``mobile``, ``web``, …) wrote in ``folder``: ``files`` (relative
    paths), or by default every file now under it (a staging folder holds nothing else)."""
    folder = Path(folder)
    if files is None:
        files = sorted(
            p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() and p != folder / LISTING
        )
    path = folder / LISTING
    path.write_text(
        json.dumps({"edgecnn_files": 1, "writer": writer, "files": files}, indent=1) + "\n", encoding="utf-8"
    )
    return path


def foreign_files(folder: str | os.PathLike) -> list[str]:
    """Paths under ``folder`` (relative, ``/``-separated) that no edgecnn run wrote; a wholly foreign sub-folder
    is one entry ending in ``/``. Empty when edgecnn wrote everything there (or the folder is empty)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return _walk(folder, "", _owned(folder))


def edgecnn_subfolders(folder: str | os.PathLike) -> list[str]:
    """Sub-folders of ``folder`` that another edgecnn run wrote on their own (``mobile/``): a replacement of
    ``folder`` does not carry them over, and says so."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    owned = _owned(folder) or set()
    manifest = _read_json(folder / "manifest.json")  # an older export names its bundle/ folder only here
    bundle = manifest.get("bundle") if isinstance(manifest, dict) else None
    parts = {bundle.get("folder")} if isinstance(bundle, dict) else set()
    return sorted(
        p.name + "/"
        for p in folder.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and p.name not in parts
        and _owned(p) is not None
        and not any(o.startswith(p.name + "/") for o in owned)
    )


def writer_of(folder: str | os.PathLike) -> str | None:
    """Which edgecnn command wrote ``folder`` (from its listing or record), or None."""
    folder = Path(folder)
    listing = _read_json(folder / LISTING)
    if isinstance(listing, dict) and isinstance(listing.get("writer"), str):
        return listing["writer"]
    for name, key, writer in _RECORDS:
        data = _read_json(folder / name)
        if isinstance(data, dict) and key in data:
            return writer
    return None


def describe(paths: list[str], shown: int = 3) -> str:
    """``a, b, c and 4 more``: a few names for a one-line message."""
    head = ", ".join(paths[:shown])
    return head + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


# --- reading what a folder says it holds -------------------------------------------------------------------------


def _walk(folder: Path, prefix: str, owned: set[str] | None) -> list[str]:
    found: list[str] = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        rel = prefix + entry.name
        if entry.is_dir() and not entry.is_symlink():
            own = _owned(entry)
            if owned is not None and rel + "/" in owned:  # a sub-folder the record claims whole (a web app's ort/)
                continue
            if own is not None and owned is None:  # a folder of unknown purpose is not replaced for holding
                found.append(rel + "/ (another edgecnn output)")  # outputs of other runs (exported/ itself)
            elif own is not None:  # written by an edgecnn run of its own (mobile/, bundle/): judged by its listing
                found += [rel + "/" + f for f in _walk(entry, "", own)]
            elif owned is not None and any(o.startswith(rel + "/") for o in owned):
                found += _walk(entry, rel + "/", owned)
            else:
                found.append(rel + "/")
        elif owned is None or rel not in owned:
            found.append(rel)
    return found


def _owned(folder: Path) -> set[str] | None:
    """The files edgecnn wrote in ``folder`` (relative paths, the listing or record included), or None when
    nothing there says edgecnn wrote the folder."""
    listing = _read_json(folder / LISTING)
    if isinstance(listing, dict) and listing.get("edgecnn_files") == 1 and isinstance(listing.get("files"), list):
        return {LISTING, *_safe(listing["files"])}
    for name, key, _ in _RECORDS:
        data = _read_json(folder / name)
        if isinstance(data, dict) and key in data:
            return {name, *_safe(_NAMED[key](data))}
    return None


def _export_files(data: dict) -> list:
    golden = data.get("golden")  # golden.npz, named by exports since 0.2 (compare judges on it)
    named = [golden.get("file")] if isinstance(golden, dict) else []
    return [a.get("file") for a in _list(data.get("artifacts")) if isinstance(a, dict)] + named


def _mobile_files(data: dict) -> list:
    return [*_export_files(data), *_list(data.get("required_operators")), *_MOBILE_FIXED]


def _bundle_files(data: dict) -> list:
    files = data.get("files")
    names = list(files) if isinstance(files, (dict, list)) else []
    return [*names, *[m.get("file") for m in _list(data.get("models")) if isinstance(m, dict)], *_BUNDLE_FIXED]


def _web_files(data: dict) -> list:
    models = [m.get("file") for m in _list(data.get("models")) if isinstance(m, dict)]
    return [*models, *_WEB_FIXED, *_ORT_PREFIX]


def _sweep_files(data: dict) -> list:
    return []  # the sweep's export folders each carry their own manifest


# onnxruntime-web's files of a web app live in ort/: the whole sub-folder is the writer's
_ORT_PREFIX = ("ort/",)

_RECORDS = (
    ("manifest.json", "edgecnn_manifest", "export"),
    ("report.json", "edgecnn_mobile_report", "mobile"),
    ("bundle.json", "edgecnn_bundle", "bundle"),
    ("card.json", "edgecnn_web", "web"),
    ("sweep.json", "exports", "sweep"),
)
_NAMED = {
    "edgecnn_manifest": _export_files,
    "edgecnn_mobile_report": _mobile_files,
    "edgecnn_bundle": _bundle_files,
    "edgecnn_web": _web_files,
    "exports": _sweep_files,
}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _safe(names) -> list[str]:
    """Relative, non-escaping POSIX paths only: a record cannot claim files outside its folder."""
    safe = []
    for name in names:
        if not isinstance(name, str) or not name or name.startswith("/") or "\\" in name:
            continue
        parts = PurePosixPath(name).parts
        if ".." not in parts:
            safe.append(name)
    return safe


def _read_json(path: Path):
    try:
        if not path.is_file() or path.stat().st_size > 64 << 20:  # a record, not a data file: bounded read
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
