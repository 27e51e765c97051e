"""``SignalMiddleware``: the request signals around any ASGI application.

Wrap an ASGI 3 application (Starlette, FastAPI, Quart, a bare ``async def app(scope,
receive, send)``) and each HTTP request sends what Django's ASGI handler sends:

- ``request_started(scope=scope)`` with ``asend``, before the application is called;
- ``got_request_exception(request=scope)``, sender None, when the application raises. As in
  Django, it is sent with ``send_robust`` inside an ``except`` block, so ``sys.exc_info()``
  gives sync receivers the exception: the send runs in a worker thread in which the
  exception is being handled again (as asgiref's ``sync_to_async`` does for Django), so the
  event loop is not blocked. Being a send from sync code, it runs async receivers as
  ``send`` does (see docs/async.md), each in a task of its own. The exception then
  propagates to the server;
- ``request_finished()`` with ``asend``, exactly once per request: after the last message
  of the response has been handed to the server, or when the application learns that the
  client disconnected (``http.disconnect``), or when the application returns or raises
  without having finished the response, whichever comes first.

The sender of ``request_started`` and ``request_finished`` is the middleware's class unless
``sender=`` is given. ``lifespan`` and ``websocket`` connections pass through untouched.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tocsin import catalogue
from tocsin._references import safe_repr

__all__ = ["SignalMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApplication = Callable[[Scope, Receive, Send], Awaitable[None]]


class SignalMiddleware:
    """Wrap the ASGI application ``app`` so that each HTTP request sends the request signals.

    ``sender`` is the sender of ``request_started`` and ``request_finished``; by default the
    middleware's class, as Django's handler sends its own class.
    """

    def __init__(self, app: ASGIApplication, *, sender: object = None) -> None:
        if not callable(app):
            raise TypeError(f"SignalMiddleware needs an ASGI application; got {safe_repr(app)}")
        self.app = app
        self.sender = type(self) if sender is None else sender

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection: an HTTP request with the signals, anything else as is."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _Request(self.sender, scope, receive, send).run(self.app)


class _Request:
    """One HTTP request: watches its messages to send ``request_finished`` exactly once."""

    __slots__ = ("_receive", "_send", "finished", "scope", "sender", "trailers")

    def __init__(self, sender: object, scope: Scope, receive: Receive, send: Send) -> None:
        self.sender = sender
        self.scope = scope
        self._receive = receive
        self._send = send
        self.finished = False
        self.trailers = False  # the response announced trailers, which then end it

    async def run(self, app: ASGIApplication) -> None:
        await catalogue.request_started.asend(self.sender, scope=self.scope)
        try:
            await app(self.scope, self.receive, self.send)
        except Exception:
            await _report_exception(self.scope)
            raise
        finally:
            await self.finish()

    async def finish(self) -> None:
        # Checked and set with no await in between: one event loop runs this request, so
        # two callers cannot both get past the check.
        if self.finished:
            return
        self.finished = True
        await catalogue.request_finished.asend(self.sender)

    async def receive(self) -> Message:
        message = await self._receive()
        if message.get("type") == "http.disconnect":
            await self.finish()
        return message

    async def send(self, message: Message) -> None:
        await self._send(message)
        if self._completes(message):
            await self.finish()

    def _completes(self, message: Message) -> bool:
        """Whether ``message`` is the last one of the response."""
        kind = message.get("type")
        if kind == "http.response.start":
            self.trailers = bool(message.get("trailers", False))
            return False
        if kind in ("http.response.body", "http.response.zerocopysend"):
            return not self.trailers and not message.get("more_body", False)
        if kind == "http.response.trailers":
            return not message.get("more_trailers", False)
        return kind == "http.response.pathsend"


async def _report_exception(scope: Scope) -> None:
    """Send ``got_request_exception`` for the exception being handled, off the event loop."""
    error = sys.exception()
    assert error is not None
    await asyncio.to_thread(_report_in_this_thread, error, scope)


def _report_in_this_thread(error: BaseException, scope: Scope) -> None:
    # sys.exc_info() belongs to a thread: raise the exception again here so that receivers
    # find it, and put its traceback back as it was, so the server logs the original.
    traceback = error.__traceback__
    try:
        raise error
    except BaseException:
        catalogue.got_request_exception.send_robust(None, request=scope)
    finally:
        error.__traceback__ = traceback
