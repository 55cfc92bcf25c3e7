"""The Parquet output of ``predict_dataset``: a folder ``FILE.parquet/`` of part files, resumable.

Why a folder of parts and not one file: a run that is killed keeps every part it finished, and the next run with
the same output reads their ``path`` column and skips those images. Each part is written to a hidden temp file
in the folder and renamed into place (``os.replace``), so a part is either whole or absent; readers
(``pyarrow.parquet.read_table(FOLDER)``, pandas, Spark, Ray) ignore the hidden ``.``-prefixed temp files. The
schema is fixed, so every part reads as one table. The model's SHA-256 is stored in each part's metadata: a
resume with another model is refused rather than mixing two models' rows.

The folder is touched only under its lock (``core.files.output_lock``): ``check`` reads, ``prepare`` (clearing temp
parts) runs once the lock is held, so a refused second run never deletes the first one's parts in flight. A part
is flushed to disk (``fsync``) before its rename; even so, a crash of the machine (not of the process) can leave a
0-byte or truncated ``part-*.parquet``. A resume *rewrites* such a part rather than skipping over it: its rows are
unreadable, so its images count as not done and are predicted again into a new part, and the broken file leaves
the visible names (a 0-byte one is deleted, it holds nothing; another is renamed to a hidden
``.NAME.unreadable``, which readers skip), because one unreadable part makes ``read_table(FOLDER)`` fail for
every reader of the output.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..core.errors import ArtifactError, InputError, first_line

PART_GLOB = "part-*.parquet"
MODEL_KEY = b"edgecnn.model_sha256"


def schema(model_sha256: str, task: str) -> Any:
    """The one schema of every part (classification and segmentation columns both; unused ones are null)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("ok", pa.bool_()),
            ("error", pa.string()),
            ("top1", pa.string()),
            ("labels", pa.list_(pa.string())),
            ("probabilities", pa.list_(pa.float64())),
            ("mask_file", pa.string()),
            ("mask_shape", pa.list_(pa.int32())),
        ],
        metadata={MODEL_KEY: model_sha256.encode(), b"edgecnn.task": task.encode()},
    )


def check(output: str | os.PathLike) -> Path:
    """The output folder's path; a plain file of that name is refused. Reads only (before the lock is held)."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; give a new name (it becomes a folder of Parquet parts)")
    return out


def prepare(output: str | os.PathLike) -> Path:
    """The output folder, created if needed, its stale temp parts removed. Call it holding the output's lock:
    a temp part of a live run is that run's part in flight."""
    out = check(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create output folder {out} ({exc.strerror})") from None
    for stale in out.glob(".part-*.tmp"):  # left by a run killed mid-write; never renamed, never read
        stale.unlink(missing_ok=True)
    return out


def done_paths(out: Path, model_sha256: str, notes: list | None = None) -> set[str]:
    """The paths already written in ``out`` (rows with errors included: a broken file stays broken).

    An unreadable part (0 bytes, or truncated: what a machine crash can leave) is set aside (``_set_aside``)
    and its images are not counted as done; what was done is said in ``notes``.

    Raises:
        InputError: the parts were written with another model.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in sorted(out.glob(PART_GLOB)):
        try:
            meta = pq.read_schema(part).metadata or {}
            table = pq.read_table(part, columns=["path"])
        except (OSError, ValueError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
            message = _set_aside(part, exc)
            logging.getLogger("edgecnn").warning(message)
            if notes is not None:
                notes.append(message)
            continue
        if meta.get(MODEL_KEY, model_sha256.encode()).decode() != model_sha256:
            raise InputError(
                f"{out} holds predictions of another model (SHA-256 {meta[MODEL_KEY].decode()[:12]}…); "
                "give a new --output for this model"
            )
        done.update(table.column("path").to_pylist())
    return done


def _set_aside(part: Path, exc: BaseException) -> str:
    """Take an unreadable part out of the folder's visible names; its images are predicted again."""
    try:
        if part.stat().st_size == 0:
            part.unlink()
            return f"{part.name} was empty (0 bytes, left by a crash): removed; its images are predicted again"
        aside = part.with_name(f".{part.name}.unreadable")
        os.replace(part, aside)
    except OSError as err:
        raise ArtifactError(
            f"{part}: not a readable Parquet part, and it cannot be moved aside ({err.strerror}); "
            "move it away and rerun"
        ) from None
    return (
        f"{part.name} is not a readable Parquet part ({first_line(exc)}): moved to {aside.name}; its images "
        "are predicted again"
    )


class PartWriter:
    """Collects result tables and writes them as atomic parts of ``part_rows`` rows (the last one smaller)."""

    def __init__(self, out: Path, table_schema: Any, part_rows: int) -> None:
        self.out, self.schema, self.part_rows = out, table_schema, max(1, int(part_rows))
        self.run_id = uuid.uuid4().hex[:8]  # parts of different runs never collide
        self.pending: list = []
        self.pending_rows = 0
        self.parts: list[Path] = []
        self.rows = 0

    def add(self, table: Any) -> None:
        if table.num_rows:
            self.pending.append(table.cast(self.schema))
            self.pending_rows += table.num_rows
        if self.pending_rows >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending_rows:
            return
        table = pa.concat_tables(self.pending).replace_schema_metadata(self.schema.metadata)
        dest = self.out / f"part-{self.run_id}-{len(self.parts):05d}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=self.out)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh)
                fh.flush()
                os.fsync(fh.fileno())  # its bytes reach the disk before its name: no 0-byte part after a crash
            os.replace(tmp, dest)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ArtifactError(f"cannot write {dest} ({exc})") from None
            raise
        self.parts.append(dest)
        self.rows += table.num_rows
        self.pending, self.pending_rows = [], 0
