"""File helpers shared by the pipeline, the runtime side and the tools (standard library only)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ArtifactError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (checkpoints and models can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temp file beside ``path``, then move it into place: never a half-written file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a report should read like any file
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise ArtifactError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


# --- output folders: refuse to overwrite, stage, swap atomically ----------------------------------------------


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike, force: bool) -> Iterator[Path]:
    """Build an output folder in a staging folder beside it; move it into place only when the block succeeds.

    A folder that already holds files is refused unless ``force``; even then, the old files stay until the
    new ones are complete, so a failed or killed run never leaves a half-written folder where a good one was.
    On any error (``KeyboardInterrupt`` included) the staging folder is removed and the error goes on.
    """
    out_dir = Path(out_dir)
    staging = _prepare_staging(out_dir, force)
    try:
        yield staging
        _swap_in(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _prepare_staging(out_dir: Path, force: bool) -> Path:
    """Check ``out_dir`` may be written, clear stale staging folders, and create a fresh staging folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactError(f"output path '{out_dir}' is a file; pass a folder with --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ArtifactError(f"'{out_dir}' already holds files; pass --force to replace them "
                            "(the old files stay until the new ones are complete)")
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create output folder '{parent}' ({exc.strerror}); pass --out DIR") from None
    _clear_stale(parent, out_dir.name)
    staging = parent / f".{out_dir.name}.staging-{os.getpid()}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        probe = staging / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ArtifactError(f"output folder '{parent}' is not writable ({exc.strerror}); pass --out DIR") from None
    return staging


def _clear_stale(parent: Path, name: str) -> None:
    """Remove staging folders left by runs that were killed (their process no longer exists)."""
    for leftover in parent.glob(f".{name}.staging-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap_in(staging: Path, out_dir: Path) -> None:
    """Move the staging folder into place; an existing folder is swapped out only at this last moment."""
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
    try:
        os.replace(staging, out_dir)
    except OSError:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
