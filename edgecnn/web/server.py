"""A local static HTTP server for the browser: started and stopped by the code that needs it (``serve``).

It sends the cross-origin isolation headers (``Cross-Origin-Opener-Policy: same-origin``,
``Cross-Origin-Embedder-Policy: require-corp``): without them a page has no ``SharedArrayBuffer`` and
onnxruntime-web runs WASM on one thread only. ``.mjs`` is served as JavaScript and ``.wasm`` as
``application/wasm`` (streaming compilation refuses anything else). It listens on 127.0.0.1 only, on a free port.
A folder that does not exist is refused (not served as 404s); a URL no file can have (``/%00``) is answered
400 Bad Request; a failing request is one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import sys
import threading
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..core.errors import EdgeCNNError, InputError

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
TYPES = {
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".bin": "application/octet-stream",
}


class _Handler(SimpleHTTPRequestHandler):
    """Files from several folders (``mounts``: URL prefix → folder), never outside them."""

    mounts: Mapping[str, Path] = {}
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def translate_path(self, path: str) -> str:
        url = posixpath.normpath(unquote(urlsplit(path).path))
        if "\x00" in url:  # no file name holds one; os calls raise ValueError on it (send_head answers 400)
            raise ValueError("a NUL byte in the URL")
        for prefix in sorted(self.mounts, key=len, reverse=True):
            head = prefix.rstrip("/") + "/"
            if url == prefix.rstrip("/") or url.startswith(head) or prefix == "/":
                rest = url[len(prefix.rstrip("/")) :].lstrip("/")
                root = self.mounts[prefix].resolve()
                full = (root / rest).resolve()
                # normpath already removed "..": this is the second guard, against symlinks leading out
                return str(full) if full == root or root in full.parents else str(root / "__outside__")
        return "/nonexistent"

    def send_head(self):
        """As the base class, but a URL no file can have (``/%00``) is 400 Bad Request, never a traceback."""
        try:
            return super().send_head()
        except ValueError:
            self.send_error(HTTPStatus.BAD_REQUEST, "Bad URL")
            return None

    def end_headers(self) -> None:
        for key, value in ISOLATION_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        pass  # quiet: a test or a bench prints its own lines


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """One line on stderr instead of the base class's traceback; a client that hung up is not an error."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, ConnectionError):
            print(
                f"edgecnn.web.server: a request from {client_address[0]} failed: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


def _folders(table: Mapping[str, Path]) -> None:
    for folder in table.values():
        if not folder.is_dir():
            what = "is not a folder" if folder.exists() else "does not exist"
            raise InputError(f"{folder} {what}; give the web app folder to serve (made by 'edgecnn web')")


@contextlib.contextmanager
def serve(mounts: Mapping[str, str | os.PathLike] | str | os.PathLike) -> Iterator[str]:
    """Serve ``mounts`` (a folder, or URL prefix → folder) on 127.0.0.1; yield the base URL; stop on exit."""
    table = {"/": Path(mounts)} if isinstance(mounts, (str, os.PathLike)) else {k: Path(v) for k, v in mounts.items()}
    _folders(table)  # a missing folder would be served as 404s forever
    handler = type("Handler", (_Handler,), {"mounts": table})
    server = _Server(("127.0.0.1", 0), functools.partial(handler, directory=str(next(iter(table.values())))))
    thread = threading.Thread(target=server.serve_forever, name="edgecnn-web-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """``python -m edgecnn.web.server FOLDER``: serve a web app folder until Ctrl-C (for trying it locally).

    A missing folder (or a file) is one line on stderr and exit 2, as the CLI's errors are.
    """
    import time

    folder = (argv if argv is not None else sys.argv[1:] or ["."])[0]
    try:
        with serve(folder) as url:
            print(f"serving {folder} at {url}/ (cross-origin isolated); Ctrl-C stops", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except EdgeCNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":  # pragma: no cover
    main()
