"""A bundle's self-test in onnxruntime-node and in headless Chromium (onnxruntime-web), and latency in the browser.

The models run in the other runtime; their outputs come back here as arrays and are judged by
``edgecnn.runtime.selftest.judge``, the function the onnxruntime self-test uses, with the same per-precision
tolerances, so the table and the exit codes are the same whichever runtime ran them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ArtifactError, InputError, ProviderUnavailableError
from ..core.paths import inside
from ..runtime.selftest import SelftestResult, selftest_with
from .npm import ASSETS, find_chromium, node_modules, run_node
from .server import serve

RUNTIMES = ("python", "node", "browser")
BROWSER_EPS = ("wasm", "webgpu")
PAGE_TIMEOUT_MS = 120_000


def _write_feeds(root: Path, entries: list, golden: dict, folder: Path) -> list[tuple[dict, Path, Path, str, list]]:
    """Each model's golden input as raw bytes ``folder/in_I.bin`` for the other runtime to read; returns
    ``(entry, model path inside the bundle, input file, dtype, dims)`` per model."""
    feeds = []
    for i, entry in enumerate(entries):
        array = golden[entry["input"]]
        dtype = "uint8" if array.dtype == np.uint8 else "float32"
        array = np.ascontiguousarray(array.astype(dtype))
        array.tofile(folder / f"in_{i}.bin")
        feeds.append(
            (entry, inside(root, entry["file"], "model file"), folder / f"in_{i}.bin", dtype, list(array.shape))
        )
    return feeds


def selftest_node(bundle: str | os.PathLike) -> SelftestResult:
    """``selftest`` with each model run by onnxruntime-node's CPU provider (the pinned version)."""
    runtime = {}

    def run_models(root: Path, entries: list, golden: dict) -> list:
        with tempfile.TemporaryDirectory(prefix="edgecnn-node-") as tmp:
            job = [
                {
                    "name": entry["file"],
                    "file": str(model),
                    "input": str(feed),
                    "dtype": dtype,
                    "dims": dims,
                    "output": str(feed.with_name(feed.name.replace("in_", "out_"))),
                }
                for entry, model, feed, dtype, dims in _write_feeds(root, entries, golden, Path(tmp))
            ]
            (Path(tmp) / "job.json").write_text(json.dumps({"models": job}))
            result = run_node(
                "node_selftest.mjs", [str(Path(tmp) / "job.json")], timeout=300, what="the onnxruntime-node self-test"
            )
            runtime["name"] = result["runtime"]
            return [
                (np.fromfile(j["output"], dtype=np.float32).reshape(m["dims"]), ("onnxruntime-node cpu",))
                for j, m in zip(job, result["models"])
            ]

    result = selftest_with(bundle, run_models, "")
    return SelftestResult(result.bundle, result.files_verified, result.checks, runtime.get("name", "node"))


def run_pages(pages: list[dict], mounts: dict, *, browser: str | None = None, webgpu: bool = False) -> dict:
    """Open ``pages`` (driver.mjs specs; ``url`` relative to the server) in one headless Chromium."""
    exe = find_chromium(browser)
    mounts = {"/ort/": node_modules() / "onnxruntime-web" / "dist", **mounts}
    with serve(mounts) as base, tempfile.TemporaryDirectory(prefix="edgecnn-driver-") as tmp:
        specs = [{"timeout_ms": PAGE_TIMEOUT_MS, **p, "url": base + p["url"]} for p in pages]
        (Path(tmp) / "job.json").write_text(json.dumps({"browser": exe, "webgpu": webgpu, "pages": specs}))
        return run_node(
            "driver.mjs",
            [str(Path(tmp) / "job.json")],
            timeout=PAGE_TIMEOUT_MS / 1000 * len(pages) + 60,
            what="headless Chromium",
        )


def _harness(job: dict, folder: Path, browser: str | None, extra_mounts: dict | None = None) -> dict:
    """Run harness.js on ``job`` (written as ``folder/job.json``) and return its result, errors raised."""
    (folder / "job.json").write_text(json.dumps(job))
    for name in ("harness.html", "harness.js"):
        (folder / name).write_bytes((ASSETS / name).read_bytes())
    out = run_pages(
        [{"url": "/job/harness.html", "kind": "harness"}],
        {"/job/": folder, **(extra_mounts or {})},
        browser=browser,
        webgpu=job["ep"] == "webgpu",
    )
    page = out["pages"][0]
    if "error" in page:
        cls = ProviderUnavailableError if page.get("unavailable") else ArtifactError
        raise cls(f"{job['ep']} in {out['browser'].split('/')[-1]}: {page['error']}")
    page["browser"] = out["browser"]
    return page


def selftest_browser(bundle: str | os.PathLike, *, browser: str | None = None, ep: str = "wasm") -> SelftestResult:
    """``selftest`` with each model run by onnxruntime-web inside headless Chromium (``ep``: wasm or webgpu)."""
    if ep not in BROWSER_EPS:
        raise InputError(f"--ep {ep}: the browser runs 'wasm' or 'webgpu'")
    runtime = {}

    def run_models(root: Path, entries: list, golden: dict) -> list:
        with tempfile.TemporaryDirectory(prefix="edgecnn-browser-") as tmp:
            models = [
                {"url": f"/bundle/{entry['file']}", "input_url": f"/job/{feed.name}", "dtype": dtype, "dims": dims}
                for entry, _, feed, dtype, dims in _write_feeds(root, entries, golden, Path(tmp))
            ]
            page = _harness({"mode": "selftest", "ep": ep, "models": models}, Path(tmp), browser, {"/bundle/": root})
        runtime["name"] = f"onnxruntime-web {page['onnxruntime_web']} ({ep}, {page['threads']} threads)"
        return [
            (np.asarray(m["values"], dtype=np.float32).reshape(m["dims"]), (f"onnxruntime-web {ep}",))
            for m in page["models"]
        ]

    result = selftest_with(bundle, run_models, "")
    return SelftestResult(result.bundle, result.files_verified, result.checks, runtime.get("name", "browser"))


@dataclass(frozen=True)
class BrowserBench:
    """Latency of one model inside headless Chromium (onnxruntime-web)."""

    model_path: str
    ep: str
    input_shape: list
    dtype: str
    create_ms: float
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    threads: int
    simd: bool
    cross_origin_isolated: bool
    onnxruntime_web: str
    browser: str
    times_ms: list = field(repr=False, default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def bench_browser(
    model: str | os.PathLike,
    *,
    ep: str = "wasm",
    threads: int | None = None,
    warmup: int = 10,
    runs: int | None = None,
    seconds: float | None = None,
    input_size: tuple | None = None,
    browser: str | None = None,
) -> BrowserBench:
    """Time ``model`` in headless Chromium: session creation apart, ``warmup`` untimed runs, then the timed ones.

    Raises:
        ProviderUnavailableError: ``ep`` is webgpu and the browser has no GPU adapter ("not available here").
    """
    from .app import model_input

    if ep not in BROWSER_EPS:
        raise InputError(f"--ep {ep}: the browser runs 'wasm' or 'webgpu'")
    path = Path(model).resolve()
    dims, dtype = model_input(path, input_size)
    runs = runs if runs is not None else (0 if seconds else 50)
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as tmp:
        job = {
            "mode": "bench",
            "ep": ep,
            "threads": threads,
            "warmup": warmup,
            "runs": runs,
            "seconds": seconds,
            "models": [{"url": f"/model/{path.name}", "dtype": dtype, "dims": dims}],
        }
        page = _harness(job, Path(tmp), browser, {"/model/": path.parent})
    times = np.asarray(page["times_ms"], dtype=np.float64)
    p50, p90, p99 = (float(np.percentile(times, q)) for q in (50, 90, 99))
    return BrowserBench(
        str(model),
        ep,
        dims,
        dtype,
        round(page["create_ms"], 2),
        len(times),
        warmup,
        p50,
        p90,
        p99,
        float(times.mean()),
        page["threads"],
        page["simd"],
        page["cross_origin_isolated"],
        page["onnxruntime_web"],
        page["browser"],
        times.tolist(),
    )


def selftest_in(
    runtime: str, bundle: str | os.PathLike, *, ep: str = "cpu", browser: str | None = None
) -> SelftestResult:
    """``edgecnn selftest --runtime node|browser``: the bundle's self-test in that runtime."""
    if runtime == "node":
        if ep not in ("cpu", None):
            raise InputError(f"--ep {ep}: the Node self-test runs onnxruntime-node's cpu provider")
        return selftest_node(bundle)
    if runtime == "browser":
        return selftest_browser(bundle, browser=browser, ep="wasm" if ep in ("cpu", None) else ep)
    raise InputError(f"--runtime {runtime}: choose one of {', '.join(RUNTIMES)}")
