"""compare's recommendation beside the fastest peer recipe that is right: the check of tools/peer_runtimes.py for
``edgecnn compare`` (issue 31).

In each model's process, after the files are made: ``edgecnn compare`` runs over edgecnn's export folder (its own
judging and timing, no ``--data``) and names the file and runtime it recommends; every contender, edgecnn's and
the peers', is then judged as compare judges a row — ``runtime.golden.judge`` on the export's golden outputs with
its precision's tolerances, and top-1 (pixel) agreement with fp32 on those held-out photos within the margin. A
peer int8 recipe that fails either does not "meet the margin". The ratio is taken in the same interleaved timing
runs as the rest of the table: the recommended contender's p50 over the fastest qualifying peer int8's, each run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

MARGIN = 1.0  # points: compare's default
TARGET = 1.0  # issue 31: the recommendation no slower than the fastest qualifying peer (median ratio)
#: the peer recipes issue 31 names: onnxruntime's default QDQ, OpenVINO on it, ExecuTorch's and LiteRT's int8
PEERS = ("onnxruntime/default/int8", "openvino/default/int8", "executorch/default/int8", "litert/default/int8")


def recommend(folder: Path, seconds: float = 0.5) -> dict:
    """``edgecnn compare FOLDER --json`` in a fresh process: ``{"label", "key", "exit"}`` of its recommendation
    (``key``: the contender key of tools/peer_runtimes.py, ``None`` when nothing was recommended)."""
    cli = Path(sys.executable).with_name("edgecnn")
    cmd = [str(cli), "compare", str(folder), "--json", "--seconds", str(seconds), "--threads", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"label": None, "key": None, "exit": done.returncode, "error": said[:300]}
    result = json.loads(done.stdout)
    row = next((r for r in result["rows"] if r["label"] == result["recommended"]), None)
    return {"label": result["recommended"], "key": row_key(row) if row else None, "exit": done.returncode}


def row_key(row: dict) -> str:
    """compare's row (file format, precision, where it ran) as a contender key: ``runtime/edgecnn/precision``."""
    fmt, where = row["format"], row["where"]
    from edgecnn.runtime.choose.measure import FORMAT_RUNTIMES

    runtime = FORMAT_RUNTIMES.get(fmt) or ("openvino" if where == "openvino" else "onnxruntime")
    return f"{runtime}/edgecnn/{row['precision']}"


def judge_golden(contender, golden, task: str, precision: str) -> dict:
    """compare's verdict on one contender: parity on the golden outputs (trained-weight rules: the weights were
    given), and its top-1 (pixel) agreement there."""
    from edgecnn.runtime.golden import judge

    outputs = np.concatenate([np.asarray(contender.predict(a[None]), np.float32) for a in golden.inputs])
    report = judge(
        golden, outputs.reshape(golden.reference.shape), task=task, precision=precision, random_weights=False
    )
    agreement = report.pixel_agreement if task == "segmentation" else report.top1_agreement
    return {"passed": bool(report.passed), "agreement": None if agreement is None else float(agreement)}


def meets(verdict: dict | None, margin: float = MARGIN) -> bool:
    """Right by compare's rule without ``--data``: parity passed and agreement within ``margin`` points."""
    if not verdict or not verdict["passed"] or verdict["agreement"] is None:
        return False
    return 100.0 * (1.0 - verdict["agreement"]) <= margin + 1e-9


def fastest(result: dict, keys) -> str | None:
    """The key of lowest median p50 over the runs among ``keys`` that were timed."""
    timed = [k for k in keys if any(k in r for r in result["p50_ms"])]
    return min(timed, key=lambda k: np.median([r[k] for r in result["p50_ms"] if k in r]), default=None)


def against(result: dict, key: str | None, peers) -> tuple[str | None, list[float]]:
    """The fastest of ``peers`` and ``key``'s ratio to it in each run (``(None, [])`` when either is missing)."""
    best = fastest(result, peers)
    if not key or not best:
        return None, []
    return best, [r[key] / r[best] for r in result["p50_ms"] if key in r and best in r]


def ratios(result: dict) -> tuple[str | None, list[float]]:
    """The fastest peer int8 that meets the margin, and compare's recommendation's ratio to it in each run."""
    verdicts = result.get("golden") or {}
    return against(result, result.get("compare", {}).get("key"), [p for p in PEERS if meets(verdicts.get(p))])


def any_peer(result: dict) -> tuple[str | None, list[float]]:
    """The fastest peer int8 recipe whatever its accuracy, and the recommendation's ratio to it in each run."""
    return against(result, result.get("compare", {}).get("key"), PEERS)


def parity_only(result: dict) -> tuple[str | None, str | None, list[float]]:
    """The reading for random weights, which have no accuracy to keep ("parity and speed"): the fastest of
    edgecnn's files whose parity passed on the golden outputs, the fastest peer int8 whose parity passed, and the
    ratio in each run."""
    verdicts = result.get("golden") or {}
    passed = [k for k, v in verdicts.items() if v["passed"]]
    ours = fastest(result, [k for k in passed if "/edgecnn/" in k])
    peer, each = against(result, ours, [p for p in PEERS if p in passed])
    return ours, peer, each


def _ms(result: dict, key: str | None) -> str:
    times = [x[key] for x in result["p50_ms"] if key in x] if key else []
    return f"{np.median(times):.2f}" if times else "—"


def _any(result: dict) -> str:
    peer, each = any_peer(result)
    if not peer:
        return "—"
    return f"{peer.split('/')[0]} {_ms(result, peer)} ms, {np.median(each):.2f}"


def _why_not(result: dict) -> str:
    """Why each peer int8 recipe does not meet the margin, in a few words."""
    said = []
    for p in PEERS:
        v = (result.get("golden") or {}).get(p)
        if v is None:
            said.append(f"{p.split('/')[0]}: not run")
        elif not meets(v):
            agreement = "—" if v["agreement"] is None else f"{v['agreement']:.3f}"
            said.append(f"{p.split('/')[0]}: {'parity failed' if not v['passed'] else 'agreement'} {agreement}")
    return "; ".join(said) or "—"


HEADERS = (
    "model",
    "compare recommends",
    "ms",
    "fastest peer int8 that meets the margin",
    "ms",
    "recommended / peer: median (each run)",
    f"≤ {TARGET}",
    "peer int8 recipes that do not meet it (golden agreement)",
    "fastest peer int8 at any accuracy: ms, recommended / it",
)


def rows(results: list) -> list[list[str]]:
    out = []
    for r in results:
        if "error" in r or "compare" not in r:
            continue
        rec = r["compare"]
        key = rec.get("key")
        peer, each = ratios(r)
        if not key:
            verdict = f"nothing recommended (compare exit {rec.get('exit')})"
        elif not peer:
            verdict = "no peer int8 recipe meets the margin"
        else:
            verdict = "PASS" if float(np.median(each)) <= TARGET else "FAIL (slower)"
        out.append(
            [
                r["model"],
                rec.get("label") or "—",
                _ms(r, key),
                peer or "—",
                _ms(r, peer),
                f"**{np.median(each):.2f}** (" + ", ".join(f"{q:.2f}" for q in each) + ")" if each else "—",
                verdict,
                _why_not(r),
                _any(r),
            ]
        )
    return out


PARITY_HEADERS = (
    "model",
    "fastest edgecnn file that passes parity",
    "ms",
    "fastest peer int8 that passes parity",
    "ms",
    "edgecnn / peer: median (each run)",
    f"≤ {TARGET}",
)


def parity_rows(results: list) -> list[list[str]]:
    out = []
    for r in results:
        if "error" in r or "golden" not in r:
            continue
        ours, peer, each = parity_only(r)
        if not ours:
            verdict = "no edgecnn file passes"
        elif not peer:
            verdict = "no peer int8 recipe passes"
        else:
            verdict = "PASS" if float(np.median(each)) <= TARGET else "FAIL (slower)"
        shown = f"**{np.median(each):.2f}** (" + ", ".join(f"{q:.2f}" for q in each) + ")" if each else "—"
        out.append([r["model"], ours or "—", _ms(r, ours), peer or "—", _ms(r, peer), shown, verdict])
    return out


def section(results: list) -> list[str]:
    """The lines of the table's second part (empty when no result carries compare's recommendation)."""
    body = rows(results)
    if not body:
        return []
    from edgecnn.core.text import markdown_table

    return [
        "",
        "### `edgecnn compare`'s recommendation against the fastest peer recipe that is right",
        "",
        "`edgecnn compare` over edgecnn's export folder of each model (no `--data`: agreement with fp32 on the "
        f"golden held-out photos stands in, margin {MARGIN:g} point) names a file and runtime; every peer int8 "
        "recipe is judged as compare judges a row (parity on the export's golden outputs with int8's tolerances, "
        "agreement within the margin); the ratio is taken in the interleaved runs above.",
        "",
        *markdown_table(HEADERS, body, text_columns=2),
        "",
        "Random weights have no accuracy to keep, so the same check read as parity and speed alone: the fastest of "
        "edgecnn's files whose parity passed on the golden outputs (what compare recommends at an unbounded margin) "
        "against the fastest peer int8 recipe whose parity passed, in the same runs:",
        "",
        *markdown_table(PARITY_HEADERS, parity_rows(results), text_columns=2),
    ]
