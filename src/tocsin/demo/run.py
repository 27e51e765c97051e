"""Serve the demo shop on 127.0.0.1 and show the signals its requests fire.

``main()`` drives a few requests against the shop (create, rename, delete, and one that
fails), printing each request with the signals it fired, and returns 0 once every request
has finished. ``main(port=N)`` keeps serving on that port for a browser, printing signals as
they fire, until interrupted (Ctrl-C).
"""

from __future__ import annotations

import io
import queue
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, TextIO
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import tocsin
from tocsin.demo.shop import make_app


def _heard() -> queue.SimpleQueue[tuple[str, str]]:
    """The queue the demo's receivers (tocsin.demo.signals) write to."""
    from tocsin.demo.signals import heard

    return heard


__all__ = ["main"]

_WAIT = 10.0  # seconds a request may take before the demo gives up on it

_REQUESTS = [
    ("POST", "/pizzas", {"name": "margherita"}),
    ("POST", "/pizzas/1", {"name": "diavola"}),
    ("POST", "/pizzas/1/delete", {}),
    ("GET", "/kitchen", {}),
]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _quiet_handler(errors: TextIO) -> type[WSGIRequestHandler]:
    """A request handler with no access log (the signals tell the story); errors go to
    ``errors``."""

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def get_stderr(self) -> TextIO:
            return errors

    return QuietHandler


def main(port: int | None = None, out: TextIO | None = None) -> int:
    """Run the demo, printing to ``out`` (standard output by default); return the exit status."""
    write = out or sys.stdout
    # What AppConfig.ready() does in Django: import the app's signals module, once, so that its
    # @receiver functions connect before the first request.
    tocsin.autodiscover("tocsin.demo")
    with tempfile.TemporaryDirectory(prefix="tocsin-demo-") as folder:
        app = make_app(Path(folder) / "shop.sqlite3")
        # Driving, the failing request's traceback would only alarm: the signals show it.
        handler = _quiet_handler(io.StringIO() if port is None else sys.stderr)
        try:
            server = make_server("127.0.0.1", port or 0, app, _Server, handler)
        except OSError as error:
            print(f"python -m tocsin demo: cannot serve on port {port}: {error}", file=sys.stderr)
            return 2
        url = f"http://127.0.0.1:{server.server_port}"
        try:
            if port is None:
                return _drive(server, url, write)
            return _serve(server, url, write)
        finally:
            server.server_close()


def _drive(server: WSGIServer, url: str, out: TextIO) -> int:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        print(
            f"tocsin demo: a sqlite-backed shop (a WSGI app in SignalMiddleware) served by "
            f"wsgiref at {url}.\nEach request is followed by the signals it fired, in order.",
            file=out,
        )
        for method, path, form in _REQUESTS:
            status = _request(method, url + path, form)
            shown = f" {urlencode(form)}" if form else ""
            print(f"\n{method} {path}{shown}  ->  {status}", file=out)
            for line in _signals_until_finished():
                print(f"  {line}", file=out)
        print(
            "\npost_save and post_delete came after the commit; the failed request was "
            "reported\nwhile its exception was being handled. Serve it for a browser with:  "
            "python -m tocsin demo --port 8000",
            file=out,
        )
        return 0
    except TimeoutError as error:
        print(f"python -m tocsin demo: {error}", file=out)
        return 1
    finally:
        server.shutdown()
        thread.join(_WAIT)


def _request(method: str, url: str, form: dict[str, str]) -> str:
    data = urlencode(form).encode() if method == "POST" else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data), timeout=_WAIT) as reply:
            return f"{reply.status} {reply.reason}"
    except urllib.error.HTTPError as error:
        with error:
            return f"{error.code} {error.reason}"


def _signals_until_finished() -> list[str]:
    """The lines the receivers wrote for one request, up to its request_finished."""
    lines = []
    while True:
        try:
            name, line = _heard().get(timeout=_WAIT)
        except queue.Empty:
            raise TimeoutError(f"no request_finished within {_WAIT:g} s") from None
        lines.append(line)
        if name == "request_finished":
            return lines


def _serve(server: WSGIServer, url: str, out: TextIO) -> int:
    def show() -> None:
        while True:
            _, line = _heard().get()
            print(line, file=out, flush=True)

    threading.Thread(target=show, daemon=True).start()
    print(
        f"tocsin demo shop at {url} (Ctrl-C to stop); signals appear below.", file=out, flush=True
    )
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        print("stopped", file=out, flush=True)
    return 0
