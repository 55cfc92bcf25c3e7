"""Where the images are: a folder, a glob, or any URI pyarrow (or, failing that, fsspec) can list and read.

``list_sources`` returns the image paths once, on the driver, sorted, so that a run's set of inputs is known
before anything is decoded (the output's resumability compares against it). Paths keep the form the user gave:
local ones absolute, remote ones with their scheme (``s3://bucket/key.jpg``), and that string is the row's key.
``open_filesystem`` gives the filesystem object the decode tasks read bytes through (picklable, so Ray ships it).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from ..core.errors import InputError, first_line
from ..runtime.preprocess import IMAGE_SUFFIXES

_GLOB_CHARS = "*?["


def _scheme(source: str) -> str | None:
    head, sep, _ = source.partition("://")
    return head if sep and head.isidentifier() else None


def open_filesystem(source: str) -> tuple[Any, str, str]:
    """``(filesystem, path inside it, prefix)`` for ``source``; ``prefix + path`` spells a path as given.

    pyarrow reads local paths, s3://, gs://, hdfs:// and abfs:// natively; another scheme goes through fsspec
    when it is installed (``pyarrow.fs.PyFileSystem`` over its handler).
    """
    import pyarrow.fs as pafs

    scheme = _scheme(source)
    if scheme is None or scheme == "file":
        local = source[len("file://") :] if scheme == "file" else source
        return pafs.LocalFileSystem(), str(Path(local).expanduser().absolute()), ""
    # In a URI, "?" starts the options (s3://b/k?region=eu-west-1), so only * and [ are glob characters there.
    # A URI parser may refuse them: open the folder above the first one, then append the pattern.
    uri, _, query = source.partition("?")
    cut = min((uri.find(c) for c in "*[" if c in uri), default=len(uri))
    base, _, pattern = uri[:cut].rpartition("/") if cut < len(uri) else (uri, "", "")
    pattern += uri[cut:]
    base += f"?{query}" if query else ""
    try:
        fs, path = pafs.FileSystem.from_uri(base)
    except (ValueError, TypeError, OSError) as arrow_exc:
        try:
            import fsspec
        except ImportError:
            raise InputError(
                f"{source}: pyarrow cannot open '{scheme}://' ({first_line(arrow_exc)}) and fsspec "
                "is not installed (pip install fsspec and the package for that scheme)"
            ) from None
        try:
            fsspec_fs, path = fsspec.core.url_to_fs(base)
        except (ValueError, ImportError, OSError) as exc:
            raise InputError(
                f"{source}: cannot open it (pyarrow: {first_line(arrow_exc)}; fsspec: {first_line(exc)})"
            ) from None
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_fs))
    return fs, (f"{path.rstrip('/')}/{pattern}" if pattern else path), f"{scheme}://"


def local_root(source: str | os.PathLike) -> list[str]:
    """``[folder or file]`` of a local source, what an output must stay out of; ``[]`` for a URI or a glob (a
    glob's inputs are the files it matches, and an output over one of those is a file, refused as such)."""
    source = str(source)
    scheme = _scheme(source)
    local = source[len("file://") :] if scheme == "file" else source
    if scheme not in (None, "file") or any(c in local for c in _GLOB_CHARS):
        return []
    return [str(Path(local).expanduser())]


def list_sources(source: str | os.PathLike) -> list[str]:
    """The image files of ``source`` (folder searched recursively, or a glob), sorted; hidden ones skipped.

    Raises:
        InputError: nothing there, or no image in it.
    """
    import pyarrow.fs as pafs

    source = str(source)
    fs, path, prefix = open_filesystem(source)
    pattern = None
    glob_chars = "*[" if prefix else _GLOB_CHARS
    if any(c in path for c in glob_chars):
        parts = path.split("/")
        first = next(i for i, p in enumerate(parts) if any(c in p for c in glob_chars))
        base, pattern = "/".join(parts[:first]) or "/", path
    else:
        base = path
    try:
        info = fs.get_file_info(base)
        if info.type == pafs.FileType.File and pattern is None:
            return [prefix + path]
        if info.type != pafs.FileType.Directory:
            raise InputError(f"{source}: no such folder or file")
        entries = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except OSError as exc:
        raise InputError(f"{source}: cannot list it ({first_line(exc)})") from None
    found = []
    for entry in entries:
        if entry.type != pafs.FileType.File:
            continue
        rel = entry.path[len(base) :].lstrip("/")
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden files and folders, as runtime.preprocess.list_images skips them
        if pattern is not None and not fnmatch.fnmatchcase(entry.path, pattern):
            continue
        if pattern is None and os.path.splitext(entry.path)[1].lower() not in IMAGE_SUFFIXES:
            continue
        found.append(prefix + entry.path)
    if not found:
        raise InputError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) there")
    return sorted(found)


def read_bytes(fs: Any, path: str, prefix: str) -> bytes:
    """The bytes of one listed path (``prefix`` as ``open_filesystem`` gave it); OSError when unreadable."""
    inner = path[len(prefix) :] if prefix and path.startswith(prefix) else path
    with fs.open_input_stream(inner) as stream:
        return stream.read()
