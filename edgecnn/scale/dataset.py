"""Batch prediction on Ray Data: list → decode + preprocess (tasks) → infer (actor pool) → Parquet parts.

    paths (driver: listed once, minus those already in the output)
      └─ map_batches(decode_batch)        read bytes (local, s3://, fsspec), decode, resize, crop, normalise,
                                          exactly as ``Predictor.preprocess`` does; on CPUs fused by Ray into
                                          the actors below, with GPUs separate 1-CPU tasks
          └─ map_batches(InferenceActor)  an actor pool; each actor holds one ``Predictor`` (one runner, from
                                          ``open_runner``, loaded once) with ``threads`` intra-op threads and asks Ray
                                          for that many CPUs (or one GPU with ``ep="cuda"``)
              └─ driver                   streams the result tables into atomic Parquet parts (``output``)

An unreadable image becomes a row with ``ok = False`` and its error; it never reaches the model. Actors are
restarted and their batches retried when one dies (``max_restarts``/``max_task_retries``); a failed batch's
rows are never emitted, so each input yields exactly one row. Ray is imported inside the functions only.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InputError, first_line
from ..core.files import output_lock, sha256_file
from ..core.paths import refuse_output_over_inputs
from . import output as out_parts
from .sources import list_sources, local_root, open_filesystem, read_bytes

# images per decode/inference batch: each batch is a Ray task, ~10 ms of scheduling and transfer on a local Ray;
# at 96 px (1.6 ms an image) 64 instead of 32 took the Ray run from +27% over the plain loop to +15% and +7% in two
# later runs (docs/SCALE.md); at 224 px the batch size made no measurable difference
DEFAULT_BATCH = 64
DEFAULT_PART_ROWS = 1000
DECODE_MEMORY = 256 * 2**20  # bytes a decode task asks Ray for (a batch of decoded photos, with room)


@dataclass(frozen=True)
class PredictSummary:
    """What one ``predict_dataset`` run did.

    Attributes:
        output: the Parquet folder.
        listed: image files found in the source.
        skipped: of those, already in the output from an earlier run (not read, not inferred).
        inferred: images this run sent through the model.
        errors: unreadable images this run recorded as error rows.
        parts: Parquet parts this run wrote.
        workers, threads: inference actors, and intra-op threads (= CPUs asked of Ray) per actor.
        seconds: wall time of the Ray pipeline (listing and connecting excluded).
        workers and threads are 0 when nothing was left to do (Ray was not started).
    """

    output: Path
    listed: int
    skipped: int
    inferred: int
    errors: int
    parts: tuple = ()
    workers: int = 0
    threads: int = 0
    seconds: float = 0.0
    mask_dir: Path | None = None
    notes: tuple = ()  # what the run did besides predicting (an unreadable part set aside and redone)

    @property
    def images_per_s(self) -> float:
        return (self.inferred + self.errors) / self.seconds if self.seconds > 0 else 0.0


def decode_batch(batch: dict, *, source: str, params: Any, embedded: bool) -> dict:
    """A Ray Data task: paths → preprocessed pixels, and an error text per path ("" when it decoded).

    Broken images get zero pixels (so the column stays one tensor) and their error; the actor skips them.
    """
    from ..core.errors import InputError as _InputError
    from ..runtime.preprocess import preprocess, preprocess_uint8

    fs, _, prefix = open_filesystem(source)
    paths = [str(p) for p in batch["path"]]
    h, w = params.crop
    shape = (h, w, params.channels) if embedded else (params.channels, h, w)
    pixels = np.zeros((len(paths), *shape), dtype=np.uint8 if embedded else np.float32)
    errors = []
    for i, path in enumerate(paths):
        try:
            data = read_bytes(fs, path, prefix)
            pixels[i] = (preprocess_uint8 if embedded else preprocess)(data, params)
            errors.append("")
        except _InputError as exc:
            errors.append(f"{path}: {str(exc).removeprefix('image bytes: ')}")
        except OSError as exc:
            errors.append(f"{path}: cannot read it ({exc.strerror or exc})")
        except Exception as exc:  # noqa: BLE001  (a decoder's odd failure is one image's row, never the job's end)
            errors.append(f"{path}: not a readable image ({type(exc).__name__}: {first_line(exc)})")
    return {"path": np.asarray(paths, dtype=object), "error": np.asarray(errors, dtype=object), "pixels": pixels}


class InferenceActor:
    """One actor of the pool: one ``Predictor`` for its lifetime, called on decoded batches.

    ``announce_to`` names a Ray actor told this actor's handle on start (``add``) — for monitoring, and for the
    test that kills an actor mid-run.
    """

    def __init__(
        self,
        model: str,
        providers: Sequence[str],
        threads: int,
        top_k: int,
        overrides: dict,
        mask_dir: str | None,
        model_sha256: str,
        announce_to: str | None = None,
    ) -> None:
        from ..runtime.predictor import Predictor

        self.predictor = Predictor(model, providers=list(providers), intra_op_threads=threads, **overrides)
        self.top_k, self.mask_dir = int(top_k), mask_dir
        self.schema = out_parts.schema(model_sha256, self.predictor.task)
        if announce_to:
            import ray

            ray.get(ray.get_actor(announce_to).add.remote(ray.get_runtime_context().current_actor))

    def __call__(self, batch: dict) -> Any:
        import pyarrow as pa

        paths = [str(p) for p in batch["path"]]
        errors = [str(e) for e in batch["error"]]
        good = [i for i, e in enumerate(errors) if not e]
        rows = {name: [None] * len(paths) for name in self.schema.names}
        rows["path"], rows["ok"] = paths, [not e for e in errors]
        rows["error"] = [e or None for e in errors]
        if good:
            outputs = self._infer(np.asarray(batch["pixels"])[good])
            for i, out in zip(good, outputs):
                if self.predictor.task == "classification":
                    rows["labels"][i] = [label for label, _ in out]
                    rows["probabilities"][i] = [float(p) for _, p in out]
                    rows["top1"][i] = out[0][0]
                else:
                    rows["mask_file"][i] = _save_mask(out, self.mask_dir, paths[i])
                    rows["mask_shape"][i] = list(out.shape)
        return pa.table(rows, schema=self.schema)

    def _infer(self, pixels: np.ndarray) -> list:
        """The steps of ``Predictor.predict`` after preprocessing, so results equal it image for image."""
        p = self.predictor
        if p.embedded and p.input_layout != "NHWC":  # as Predictor.preprocess lays out uint8 pixels
            pixels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
        results: list = []
        for start in range(0, len(pixels), p.batch_size):
            results.extend(p.postprocess(p.run(pixels[start : start + p.batch_size]), self.top_k))
        return results


def _save_mask(mask: np.ndarray, mask_dir: str | None, path: str) -> str | None:
    """The class mask as a PNG beside the output, named by the image and a hash of its full path."""
    if mask_dir is None:
        return None
    from PIL import Image

    stem = os.path.splitext(os.path.basename(path))[0]
    dest = Path(mask_dir) / f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:10]}.png"
    image = Image.fromarray(mask if mask.dtype == np.uint8 else mask.astype(np.uint16))
    tmp = dest.with_name("." + dest.name + ".tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, dest)  # a half-written mask never carries the final name
    return str(dest)


def plan_workers(cpus: int, workers: int | None, threads: int | None, gpu: bool) -> tuple[int, int]:
    """``(actors, threads per actor)``: on CPUs, one single-threaded actor per CPU by default.

    On CPUs each actor decodes its own batches (Ray fuses the decode stage into it: see ``_pipeline``), so the
    actors are all the work there is; they ask Ray for ``threads`` CPUs each and never share cores. One thread
    per session is the most images/s per core (no intra-op synchronisation, and decoding runs in parallel
    too): on 2 cores, 2 × 1 thread ran 187.6 images/s against 156.6 for 1 × 2 and 142.7 for a separate decode
    task beside a 1-thread actor (MobileNetV2 at 224, 2,000 JPEGs). A plan asking for more CPUs than Ray has is
    refused: its actors would wait for cores forever.
    """
    if gpu:
        return (workers or 1), (threads or 1)
    threads = threads or 1
    workers = workers or max(1, cpus // threads)
    if workers < 1 or threads < 1:
        raise InputError(f"workers and threads must be at least 1, got {workers} and {threads}")
    if workers * threads > max(cpus, 1):
        most = max(1, cpus // threads)
        raise InputError(
            f"{workers} inference actor(s) × {threads} thread(s) need {workers * threads} CPUs and Ray "
            f"has {cpus}; use fewer --workers (at most {most}) or fewer threads"
        )
    return workers, threads


def predict_dataset(
    model: str | os.PathLike,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    address: str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    batch_size: int = DEFAULT_BATCH,
    top_k: int = 5,
    ep: str | Sequence[str] = "cpu",
    part_rows: int = DEFAULT_PART_ROWS,
    progress: bool = True,
    ray_remote_args: dict | None = None,
    announce_to: str | None = None,
    **overrides,
) -> PredictSummary:
    """Predict every image of ``source`` with ``model`` on Ray, into the Parquet folder ``output``.

    Args:
        model: an exported .onnx file, at the same path on every node of a cluster (a shared mount).
        source: a folder (searched recursively), a glob (``/data/**/*.jpg``), or a URI (``s3://bucket/images/``).
        output: the Parquet folder (``preds.parquet``); rerunning with it skips the images already there.
        address: the Ray cluster (``"auto"``, ``"ray://head:10001"``); ``None`` uses or starts a local Ray.
        workers: inference actors (default on CPUs: Ray's CPUs over ``threads``, i.e. one per CPU).
        threads: intra-op threads (= CPUs reserved) per actor (default 1).
        batch_size: images per decode task and per inference call.
        top_k: classes per row (classifiers).
        ep: the actors' execution providers (``"cpu"``; ``"cuda"`` gives each actor one GPU), a name, a
            comma-separated priority list or a sequence.
        part_rows: rows per Parquet part (what a killed run can lose, at most, plus those in flight).
        progress: Ray Data's progress bars on stderr.
        ray_remote_args: extra options for the inference actors (``max_restarts`` etc. override ours).
        announce_to: name of a Ray actor whose ``add`` method receives each inference actor's handle.
        overrides: ``mean``, ``std``, ``crop``, ``labels`` for models without edgecnn metadata (as Predictor).

    Raises:
        RayMissingError: the ``ray`` extra is not installed.
        InputError / ArtifactError: no images, a bad model, an output of another model or over an input, an
            output another live run holds (refused before anything in it is touched), a plan without CPUs.
    """
    from ._ray import require_ray

    require_ray()  # the missing extra is the first thing said (imported, not started)
    if int(batch_size) < 1 or int(top_k) < 1:
        raise InputError(f"batch size and top-k must be at least 1, got {batch_size} and {top_k}")
    probe, listed, out = _check(model, source, output, overrides)
    providers = [e.strip() for e in ep.split(",")] if isinstance(ep, str) else list(ep)
    gpu = any(str(e).lower() in ("cuda", "tensorrt") for e in providers)
    actor_kwargs = {
        "model": str(Path(model).absolute()),
        "providers": providers,
        "top_k": top_k,
        "overrides": overrides,
        "model_sha256": sha256_file(model),
        "announce_to": announce_to,
    }
    run_kwargs = dict(address=address, workers=workers, threads=threads, gpu=gpu, batch_size=batch_size)
    run_kwargs.update(part_rows=part_rows, progress=progress, ray_remote_args=ray_remote_args)
    return _locked_run(out, listed, str(source), probe, actor_kwargs, run_kwargs)


def _check(model, source, output, overrides: dict) -> tuple:
    """Everything that can be checked, before the output is locked and before Ray starts: a CPU runner on the
    driver reads what the decode tasks need (preprocessing, task) and checks the model; the source is listed; the
    output may not be (or hold, or lie inside) an input. Returns (the probe ``Predictor``, the listed sources,
    the checked output path)."""
    from ..runtime.predictor import Predictor

    probe = Predictor(model, providers=["cpu"], intra_op_threads=1, **overrides)
    listed = list_sources(source)
    refuse_output_over_inputs(output, [model, *local_root(source)], "--output")
    return probe, listed, out_parts.check(output)


def _locked_run(out: Path, listed: list, source: str, probe, actor_kwargs: dict, run_kwargs: dict) -> PredictSummary:
    """Under the output's lock: skip the images already in it, then run the rest (Ray not started when none)."""
    with output_lock(out):  # nothing in the output is touched before this: a refused run deletes nothing
        out = out_parts.prepare(out)
        notes: list = []
        done = out_parts.done_paths(out, actor_kwargs["model_sha256"], notes)
        todo = [p for p in listed if p not in done]
        mask_dir = out.parent / (out.stem + ".masks") if probe.task == "segmentation" else None
        summary = dict(
            output=out, listed=len(listed), skipped=len(listed) - len(todo), mask_dir=mask_dir, notes=tuple(notes)
        )
        if not todo:  # a finished output: Ray is not even started
            return PredictSummary(inferred=0, errors=0, **summary)
        actor_kwargs = {**actor_kwargs, "mask_dir": str(mask_dir) if mask_dir else None}
        return _run(todo, source, probe, summary, actor_kwargs, **run_kwargs)


def _run(
    todo: list,
    source: str,
    probe: Any,
    summary: dict,
    actor_kwargs: dict,
    *,
    address: str | None,
    workers: int | None,
    threads: int | None,
    gpu: bool,
    batch_size: int,
    part_rows: int,
    progress: bool,
    ray_remote_args: dict | None,
) -> PredictSummary:
    """Connect to Ray, plan the actors, run the pipeline and write its parts (the caller holds the lock)."""
    from ._ray import cluster_cpus, connect

    ray = connect(address)
    import ray.data  # noqa: F811  (loads Ray Data; `ray` stays the module connect() returned)

    workers, threads = plan_workers(cluster_cpus(ray), workers, threads, gpu)
    out, mask_dir = summary["output"], summary["mask_dir"]
    if mask_dir is not None:
        mask_dir.mkdir(parents=True, exist_ok=True)
    ray.data.DataContext.get_current().enable_progress_bars = bool(progress)
    # Ray Data's INFO lines (where its own logs are) would interleave with edgecnn's summary on stderr, through a
    # handler that keeps the stream it first met: under an in-process runner, one already closed. Warnings stay.
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    t0 = time.perf_counter()
    predicted = _pipeline(
        ray,
        todo,
        source,
        probe,
        batch_size,
        workers,
        threads,
        gpu,
        {**actor_kwargs, "threads": threads},
        ray_remote_args,
    )
    writer = out_parts.PartWriter(out, out_parts.schema(actor_kwargs["model_sha256"], probe.task), part_rows)
    good = bad = 0
    for table in predicted.iter_batches(batch_format="pyarrow", batch_size=None):
        ok = table.column("ok").to_pylist()
        good, bad = good + sum(ok), bad + len(ok) - sum(ok)
        writer.add(table)
    writer.flush()
    return PredictSummary(
        inferred=good,
        errors=bad,
        parts=tuple(writer.parts),
        workers=workers,
        threads=threads,
        seconds=time.perf_counter() - t0,
        **summary,
    )


def _pipeline(
    ray: Any,
    todo: list,
    source: str,
    probe: Any,
    batch_size: int,
    workers: int,
    threads: int,
    gpu: bool,
    actor_kwargs: dict,
    ray_remote_args: dict | None,
) -> Any:
    """The lazy Ray Data plan: paths → decode tasks → inference actor pool (nothing runs until iterated)."""
    ds = ray.data.from_items(
        [{"path": p} for p in todo], override_num_blocks=max(1, min(len(todo) // batch_size, 10_000))
    )
    # CPUs: the decode stage asks for exactly what an actor asks for, so Ray Data fuses the two (it fuses map
    # operators with equal resource requests) and each actor process reads, decodes and infers its batches — no
    # hop of decoded arrays through the object store, and decoding runs on every core. GPUs: decoding stays in
    # 1-CPU tasks beside the GPU actors (the memory request keeps them apart), to feed the GPU from the CPUs.
    decode_resources = {"num_cpus": 1, "memory": DECODE_MEMORY} if gpu else {"num_cpus": threads}
    decoded = ds.map_batches(
        decode_batch,
        batch_size=batch_size,
        batch_format="numpy",
        **decode_resources,
        fn_kwargs={"source": source, "params": probe.params, "embedded": probe.embedded},
    )
    # Ray Data restarts a dead actor and retries its batches by default (max_restarts / max_task_retries -1);
    # ray_remote_args can change that (and anything else Ray takes for the actors).
    resources = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": threads}
    return decoded.map_batches(
        InferenceActor,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs=actor_kwargs,
        **resources,
        **(ray_remote_args or {}),
    )
