"""The Parquet output of ``predict_dataset``: a folder ``FILE.parquet/`` of part files, resumable.

Why a folder of parts and not one file: a run that is killed keeps every part it finished, and the next run with
the same output reads their ``path`` column and skips those images. Each part is written to a hidden temp file
in the folder and renamed into place (``os.replace``), so a part is either whole or absent; readers
(``pyarrow.parquet.read_table(FOLDER)``, pandas, Spark, Ray) ignore the hidden ``.``-prefixed temp files. The
schema is fixed, so every part reads as one table. The model's SHA-256 is stored in each part's metadata: a
resume with another model is refused rather than mixing two models' rows.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from ..core.errors import ArtifactError, InputError

PART_GLOB = "part-*.parquet"
MODEL_KEY = b"edgecnn.model_sha256"


def schema(model_sha256: str, task: str) -> Any:
    """The one schema of every part (classification and segmentation columns both; unused ones are null)."""
    import pyarrow as pa

    return pa.schema([
        ("path", pa.string()),
        ("ok", pa.bool_()),
        ("error", pa.string()),
        ("top1", pa.string()),
        ("labels", pa.list_(pa.string())),
        ("probabilities", pa.list_(pa.float64())),
        ("mask_file", pa.string()),
        ("mask_shape", pa.list_(pa.int32())),
    ], metadata={MODEL_KEY: model_sha256.encode(), b"edgecnn.task": task.encode()})


def prepare(output: str | os.PathLike) -> Path:
    """The output folder, created if needed; a plain file of that name is refused; stale temp parts removed."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output {out} is a file; give a new name (it becomes a folder of Parquet parts)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"cannot create output folder {out} ({exc.strerror})") from None
    for stale in out.glob(".part-*.tmp"):  # left by a run killed mid-write; never renamed, never read
        stale.unlink(missing_ok=True)
    return out


def done_paths(out: Path, model_sha256: str) -> set[str]:
    """The paths already written in ``out`` (rows with errors included: a broken file stays broken).

    Raises:
        InputError: the parts were written with another model.
    """
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in sorted(out.glob(PART_GLOB)):
        try:
            meta = pq.read_schema(part).metadata or {}
            table = pq.read_table(part, columns=["path"])
        except OSError as exc:
            raise ArtifactError(f"{part}: not a readable Parquet part ({exc}); move it away and rerun") from None
        if meta.get(MODEL_KEY, model_sha256.encode()).decode() != model_sha256:
            raise InputError(f"{out} holds predictions of another model (SHA-256 {meta[MODEL_KEY].decode()[:12]}…); "
                             "give a new --output for this model")
        done.update(table.column("path").to_pylist())
    return done


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
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, dest)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ArtifactError(f"cannot write {dest} ({exc})") from None
            raise
        self.parts.append(dest)
        self.rows += table.num_rows
        self.pending, self.pending_rows = [], 0
