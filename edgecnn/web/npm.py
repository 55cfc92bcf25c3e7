"""The JavaScript side's parts: Node, npm, Chromium, and the pinned npm packages in edgecnn's cache.

``edgecnn/web/npm/package.json`` and its ``package-lock.json`` pin onnxruntime-web, onnxruntime-node and
playwright-core. On first use they are installed with ``npm ci --ignore-scripts`` (the lockfile's exact
versions and hashes; no install scripts, so onnxruntime-node's CUDA download never runs: its CPU binaries ship
in the package) into ``<cache>/npm/<lockfile hash>``, where ``<cache>`` is ``$EDGECNN_CACHE`` or
``~/.cache/edgecnn``. A changed lockfile installs beside the old one, never over it. Chromium is the system's
(Debian's ``chromium``), driven by playwright-core through ``executablePath``: no browser is downloaded.
Whatever is missing is one line naming what to install.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..core.errors import ArtifactError, ProviderUnavailableError

PINNED = Path(__file__).resolve().parent / "npm"
ASSETS = Path(__file__).resolve().parent / "assets"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_TIMEOUT_S = 900


def cache_root() -> Path:
    """edgecnn's cache folder: ``$EDGECNN_CACHE`` or ``~/.cache/edgecnn`` (the rule providers.py uses too)."""
    return Path(os.environ.get("EDGECNN_CACHE") or Path.home() / ".cache" / "edgecnn")


def pinned_versions() -> dict[str, str]:
    """The exact versions the lockfile pins: ``{"onnxruntime-web": "1.30.0", ...}``."""
    lock = json.loads((PINNED / "package-lock.json").read_text())
    wanted = json.loads((PINNED / "package.json").read_text())["dependencies"]
    return {name: lock["packages"][f"node_modules/{name}"]["version"] for name in wanted}


def find_node() -> str:
    """The ``node`` executable on PATH, or a one-line error saying what to install."""
    node = shutil.which("node")
    if node is None:
        raise ProviderUnavailableError(
            "Node.js is not installed (no 'node' on PATH): install Node.js 18 or later "
            "(Debian/Ubuntu: apt-get install nodejs npm) and try again"
        )
    return node


def find_chromium(browser: str | os.PathLike | None = None) -> str:
    """A Chromium to drive: ``browser`` when given, else ``$EDGECNN_CHROMIUM``, else the system's."""
    given = browser or os.environ.get("EDGECNN_CHROMIUM")
    if given:
        path = shutil.which(str(given)) or (str(given) if Path(given).is_file() else None)
        if path is None:
            raise ProviderUnavailableError(
                f"--browser {given}: no such browser executable; give the path of a Chromium or Chrome binary"
            )
        return path
    for name in ("/usr/bin/chromium", *CHROMIUM_NAMES):
        path = shutil.which(name)
        if path:
            return path
    raise ProviderUnavailableError(
        "no Chromium found: install it (Debian/Ubuntu: apt-get install chromium) "
        "or point --browser PATH at a Chromium or Chrome binary"
    )


def node_modules() -> Path:
    """The pinned packages' ``node_modules`` folder, installed on first use (said on stderr)."""
    lock_bytes = (PINNED / "package-lock.json").read_bytes()
    target = cache_root() / "npm" / hashlib.sha256(lock_bytes).hexdigest()[:16]
    done = target / "node_modules" / ".edgecnn-installed"
    if done.is_file():
        return target / "node_modules"
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if not done.is_file():  # another process may have installed it while this one waited
            _install(target)
    return target / "node_modules"


def _install(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise ProviderUnavailableError(
            "npm is not installed (no 'npm' on PATH): install Node.js with npm "
            "(Debian/Ubuntu: apt-get install nodejs npm) and try again"
        )
    versions = ", ".join(f"{k} {v}" for k, v in pinned_versions().items())
    print(
        f"edgecnn: installing the pinned npm packages ({versions}) into {target} (first use only)",
        file=sys.stderr,
        flush=True,
    )
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PINNED / name, staging / name)
        proc = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=staging,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ArtifactError(
                f"npm ci failed in {staging} ({tail}); check that the npm registry is reachable and try again"
            )
        (staging / "node_modules" / ".edgecnn-installed").write_text(versions + "\n")
        if target.exists():
            shutil.rmtree(target)  # a half install left by a killed run (no marker): replaced whole
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _file_lock(path: Path):
    """Wait for the install lock (concurrent test workers install once, the others wait)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_node(script: str, args: list[str], *, timeout: float, what: str) -> dict:
    """Run one of the assets' Node scripts with the pinned packages; return the JSON it prints last.

    The script reads ``EDGECNN_NODE_MODULES`` to find its packages. A script that fails prints
    ``{"error": "..."}``: that message becomes the one line raised.
    """
    env = {**os.environ, "EDGECNN_NODE_MODULES": str(node_modules())}
    try:
        proc = subprocess.run(
            [find_node(), str(ASSETS / script), *args], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"{what} did not finish within {timeout:.0f} s") from None
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    try:
        result = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ArtifactError(f"{what} failed (exit {proc.returncode}): {tail}") from None
    if "error" in result:
        cls = ProviderUnavailableError if result.get("unavailable") else ArtifactError
        raise cls(f"{what}: {result['error']}")
    return result
