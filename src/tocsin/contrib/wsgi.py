"""``SignalMiddleware``: the request signals around any WSGI application.

Wrap an application (Flask, Bottle, a plain function) and each request sends what Django's
WSGI handler sends:

- ``request_started(environ=environ)`` before the application is called;
- ``got_request_exception(request=environ)``, sender None, when the application raises, or
  its response iterable raises while the server reads it or closes it. It is sent with
  ``send_robust``, as Django does, from inside the ``except`` block, so ``sys.exc_info()``
  gives (sync) receivers the exception; the exception then propagates to the server, which
  answers 500 if it has not started the response yet;
- ``request_finished()`` once per request: when the server calls ``close()`` on the
  response iterable (PEP 3333 requires it to, whether the response was sent in full or the
  client went away), so a streaming response finishes when the server is done with it, not
  when the application returns. When the application raises instead of returning, there is
  nothing to close, and it is sent before the exception propagates.

The sender of ``request_started`` and ``request_finished`` is the middleware's class unless
``sender=`` is given.

A ``wsgi.file_wrapper`` response is handed to the server unwrapped, so the server still
recognises it and may send the file its fast way (``sendfile``): the middleware only
replaces the wrapper's ``close`` on that one object. A wrapper whose ``close`` cannot be
replaced is wrapped like any other response, which works but loses the fast path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from tocsin import catalogue
from tocsin._references import safe_repr

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication
    from _typeshed.wsgi import WSGIEnvironment as Environ

__all__ = ["SignalMiddleware"]

T = TypeVar("T")


class _Finish:
    """Ends one request: closes the application's response and sends ``request_finished``,
    exactly once, however often and from wherever ``close()`` is called."""

    __slots__ = ("_close", "_environ", "_lock", "_sender")

    def __init__(
        self, close: Callable[[], object] | None, environ: Environ, sender: object
    ) -> None:
        self._close = close
        self._environ: Environ | None = environ  # None once the request has finished
        self._sender = sender
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            close, self._close = self._close, None
            environ = self._environ
            if environ is None:
                return
            self._environ = None
        try:
            if close is not None:
                try:
                    close()
                except Exception:
                    catalogue.got_request_exception.send_robust(None, request=environ)
                    raise
        finally:
            catalogue.request_finished.send(self._sender)


class _Response:
    """The application's response iterable, reporting its errors and its end."""

    __slots__ = ("_environ", "_finish", "_iterable", "_iterator")

    def __init__(self, iterable: Iterable[bytes], environ: Environ, finish: _Finish) -> None:
        self._iterable = iterable
        # Made on the first next(), not here: iter() runs code for some iterables, and an
        # error there must be reported like any other error of the response.
        self._iterator: Iterator[bytes] | None = None
        self._environ = environ
        self._finish = finish

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = self._report(lambda: iter(self._iterable))
        return self._report(self._iterator.__next__)

    def _report(self, step: Callable[[], T]) -> T:
        try:
            return step()
        except StopIteration:
            raise
        except Exception:
            catalogue.got_request_exception.send_robust(None, request=self._environ)
            raise

    def close(self) -> None:
        """Close the application's iterable and send ``request_finished`` (once)."""
        self._finish.close()


class _SizedResponse(_Response):
    """A response whose iterable has a length: a server may use it (wsgiref sets
    Content-Length for a one-item response), so it is passed on."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]


class SignalMiddleware:
    """Wrap the WSGI application ``app`` so that each request sends the request signals.

    ``sender`` is the sender of ``request_started`` and ``request_finished``; by default the
    middleware's class, as Django's handler sends its own class. The wrapped application is
    a WSGI application itself, safe to call from many threads at once.
    """

    def __init__(self, app: WSGIApplication, *, sender: object = None) -> None:
        if not callable(app):
            raise TypeError(f"SignalMiddleware needs a WSGI application; got {safe_repr(app)}")
        self.app = app
        self.sender = type(self) if sender is None else sender

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r})"

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Handle one request: send ``request_started``, call the application, and return
        its response, arranged to send ``request_finished`` when the server closes it."""
        sender = self.sender
        catalogue.request_started.send(sender, environ=environ)
        try:
            result = self.app(environ, start_response)
        except Exception:
            try:
                catalogue.got_request_exception.send_robust(None, request=environ)
            finally:
                catalogue.request_finished.send(sender)
            raise
        return _closing(result, environ, sender)


def _closing(result: Iterable[bytes], environ: Environ, sender: object) -> Iterable[bytes]:
    """Return ``result`` arranged so that closing it sends ``request_finished``."""
    finish = _Finish(getattr(result, "close", None), environ, sender)
    file_wrapper = environ.get("wsgi.file_wrapper")
    if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
        try:
            result.close = finish.close  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass  # a wrapper without a writable close: wrap it like any response
        else:
            return result
    if hasattr(type(result), "__len__"):
        return _SizedResponse(result, environ, finish)
    return _Response(result, environ, finish)
