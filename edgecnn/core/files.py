"""File helpers shared by the pipeline, the runtime side and the tools (standard library only)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import ArtifactError
from .owned import describe, edgecnn_subfolders, foreign_files, write_listing, writer_of
from .paths import refuse_folder_over_inputs


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (checkpoints and models can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def size_bytes(path: str | os.PathLike) -> int:
    """Bytes of an artifact: a file, or every file in a folder (an ``.mlpackage`` is a folder)."""
    path = Path(path)
    if not path.is_dir():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temp file beside ``path``, then move it into place: never a half-written file."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, then move it into place: a reader never sees half a file
    (a report, a .tflite, a .pte)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a file should read like any other
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
def staged_output(
    out_dir: str | os.PathLike,
    force: bool,
    notes: list | None = None,
    *,
    writer: str = "export",
    inputs: Sequence[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Build an output folder in a staging folder beside it; move it into place only when the block succeeds.

    The folder is locked for the whole block (``output_lock``): a second writer is refused at once. A folder
    that already holds files is refused unless ``force``, and ``force`` replaces only what edgecnn wrote: a folder
    holding any file no edgecnn run wrote (``core.owned``) is refused whatever the flags, and so is a folder that
    holds one of the command's own ``inputs``. Even then, the old files stay until the new ones are complete, so
    a failed or killed run never leaves a half-written folder where a good one was. On any error
    (``KeyboardInterrupt`` and SIGTERM included) the staging folder is removed and the error goes on. A
    symlinked ``out_dir`` is written through: the link keeps pointing at the (new) folder. The new folder gets
    a listing of its files, signed with ``writer``, so a later ``--force`` knows them as edgecnn's.
    """
    out_dir = Path(os.path.abspath(out_dir))  # '--out .' has no name to stage beside: use the folder's own
    if out_dir.is_symlink():
        out_dir = out_dir.resolve()
    refuse_folder_over_inputs(out_dir, inputs)
    with output_lock(out_dir, notes), _sigterm_as_exit():
        staging = _prepare_staging(out_dir, force, notes)
        try:
            yield staging
            if not force and out_dir.is_dir() and any(out_dir.iterdir()):  # appeared meanwhile, without our lock
                raise ArtifactError(
                    f"'{out_dir}' was filled by another process while this one ran; "
                    "nothing was replaced (pass --force to replace it)"
                )
            refuse_foreign(out_dir)  # a file dropped there while this run worked is not swapped away either
            write_listing(staging, writer)
            _swap_in(staging, out_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


# --- one writer per output folder --------------------------------------------------------------------------------


def lock_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.lock"


@contextlib.contextmanager
def output_lock(out_dir: str | os.PathLike, notes: list | None = None) -> Iterator[Path]:
    """Hold ``.NAME.lock`` beside ``out_dir`` while the block runs; refuse at once if a live process holds it.

    The lock file says who holds it (pid, command, since when), so the refusal can name the other writer. A
    lock left by a process that no longer exists (killed with -9) is taken over, and that is said in ``notes``
    and on the ``edgecnn`` logger.
    """
    out_dir = Path(os.path.abspath(out_dir))  # "." and "x/.." have no name to put a lock beside
    path = lock_path(out_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create output folder '{path.parent}' ({exc.strerror}); pass --out DIR") from None
    record = {
        "pid": os.getpid(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "started": process_start(os.getpid()),
    }
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_lock(path)
            if not holder and _age_s(path) < 10:  # just created by another writer, its record not yet written
                raise ArtifactError(
                    f"'{out_dir}' is being written by another process (lock {path.name}); wait for it to finish"
                ) from None
            if holder.get("pid") and _holder_alive(holder) and int(holder["pid"]) != os.getpid():
                raise ArtifactError(
                    f"'{out_dir}' is being written by process {holder['pid']} ({holder.get('command') or '?'}, "
                    f"since {holder.get('since') or '?'}); wait for it to finish, or stop it"
                ) from None
            if int(holder.get("pid") or 0) == os.getpid():
                raise ArtifactError(f"'{out_dir}' is already being written by this process") from None
            message = (
                f"took over the lock of '{out_dir}' left by process {holder.get('pid', '?')} "
                f"({holder.get('command') or '?'}), which no longer runs"
            )
            logging.getLogger("edgecnn").warning(message)
            if notes is not None:
                notes.append(message)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        except OSError as exc:
            raise ArtifactError(f"cannot lock output folder '{out_dir}' ({exc.strerror}); pass --out DIR") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        break
    else:  # pragma: no cover - another process took the stale lock between our two tries
        raise ArtifactError(f"'{out_dir}' is being written by another process; try again")
    try:
        yield path
    finally:
        if _read_lock(path).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _age_s(path: Path) -> float:
    try:
        return _dt.datetime.now().timestamp() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _read_lock(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or isinstance(data["pid"], bool):
            return {}  # not a lock edgecnn wrote: no live writer is named in it
        return data
    except (OSError, ValueError):
        return {}  # a lock half-written by a killed process holds no live pid: it is taken over


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """While the block runs, SIGTERM unwinds like Ctrl-C does (so staging folders are removed), then is restored.

    Only the main thread can set signal handlers; elsewhere the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):  # noqa: ARG001 - the signal module's handler signature
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def refuse_foreign(out_dir: Path) -> None:
    """Refuse a folder holding any file no edgecnn run wrote (``core.owned``): ``--force`` never replaces it."""
    foreign = foreign_files(out_dir)
    if foreign:
        raise ArtifactError(
            f"'{out_dir}' holds files edgecnn did not write ({describe(foreign)}); nothing was "
            "replaced: move them elsewhere or choose another --out (--force replaces only "
            "edgecnn's own files)"
        )


def _prepare_staging(out_dir: Path, force: bool, notes: list | None = None) -> Path:
    """Check ``out_dir`` may be written, clear stale staging folders, and create a fresh staging folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ArtifactError(f"output path '{out_dir}' is a file; pass a folder with --out")
    refuse_foreign(out_dir)
    if out_dir.is_dir() and force and notes is not None:
        notes.extend(
            f"replaced {sub} in '{out_dir}' (written by an earlier `edgecnn {writer_of(out_dir / sub)}` "
            "from the files this run replaces; run it again)"
            for sub in edgecnn_subfolders(out_dir)
        )
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ArtifactError(
            f"'{out_dir}' already holds files; pass --force to replace them "
            "(the old files stay until the new ones are complete)"
        )
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


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as the kernel counts it (Linux: clock ticks since boot, with the boot's id),
    or None where that cannot be read. A lock records it so that a pid reused by an unrelated process later is
    seen for what it is: not the writer that took the lock."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name in (...) may hold spaces
    return f"{boot}:{fields[19]}"  # field 22 of stat, counted after the pid and the name


def _holder_alive(holder: dict) -> bool:
    """The lock's writer still runs: its pid is alive and, when the lock recorded a start time, the process with
    that pid is the same one (a lock without one trusts its pid, as locks written before this rule do)."""
    pid = int(holder["pid"])
    if not _alive(pid):
        return False
    started = holder.get("started")
    return not started or process_start(pid) in (None, started)


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
