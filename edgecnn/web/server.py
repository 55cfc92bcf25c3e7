"""A local static HTTP server for the browser: started and stopped by the code that needs it (``serve``).

It sends the cross-origin isolation headers (``Cross-Origin-Opener-Policy: same-origin``,
``Cross-Origin-Embedder-Policy: require-corp``): without them a page has no ``SharedArrayBuffer`` and
onnxruntime-web runs WASM on one thread only. ``.mjs`` is served as JavaScript and ``.wasm`` as
``application/wasm`` (streaming compilation refuses anything else). It listens on 127.0.0.1 only, on a free port.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Mapping
from urllib.parse import unquote, urlsplit

ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".onnx": "application/octet-stream", ".bin": "application/octet-stream"}


class _Handler(SimpleHTTPRequestHandler):
    """Files from several folders (``mounts``: URL prefix → folder), never outside them."""

    mounts: Mapping[str, Path] = {}
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def translate_path(self, path: str) -> str:
        url = posixpath.normpath(unquote(urlsplit(path).path))
        for prefix in sorted(self.mounts, key=len, reverse=True):
            head = prefix.rstrip("/") + "/"
            if url == prefix.rstrip("/") or url.startswith(head) or prefix == "/":
                rest = url[len(prefix.rstrip("/")):].lstrip("/")
                root = self.mounts[prefix].resolve()
                full = (root / rest).resolve()
                # normpath already removed "..": this is the second guard, against symlinks leading out
                return str(full) if full == root or root in full.parents else str(root / "__outside__")
        return "/nonexistent"

    def end_headers(self) -> None:
        for key, value in ISOLATION_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass  # quiet: a test or a bench prints its own lines


@contextlib.contextmanager
def serve(mounts: Mapping[str, str | os.PathLike] | str | os.PathLike) -> Iterator[str]:
    """Serve ``mounts`` (a folder, or URL prefix → folder) on 127.0.0.1; yield the base URL; stop on exit."""
    table = {"/": Path(mounts)} if isinstance(mounts, (str, os.PathLike)) else {k: Path(v) for k, v in mounts.items()}
    handler = type("Handler", (_Handler,), {"mounts": table})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(next(iter(table.values())))))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="edgecnn-web-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - interactive
    """``python -m edgecnn.web.server FOLDER``: serve a web app folder until Ctrl-C (for trying it locally)."""
    import sys
    import time

    folder = (argv if argv is not None else sys.argv[1:] or ["."])[0]
    with serve(folder) as url:
        print(f"serving {folder} at {url}/ (cross-origin isolated); Ctrl-C stops", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
