"""tocsin.contrib.asgi: the request signals around an ASGI application, driven message by
message as a server would."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tocsin import catalogue
from tocsin.contrib.asgi import SignalMiddleware

REQUEST_SIGNALS = (
    catalogue.request_started,
    catalogue.got_request_exception,
    catalogue.request_finished,
)

Message = dict[str, Any]
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def http_scope(path: str = "/") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "method": "GET", "path": path}


class Client:
    """The server's side of one connection: feeds ``receive`` and records what is sent.

    Each message sent is recorded next to the signals heard so far, so a test can see which
    signal came before or after which message.
    """

    def __init__(self, heard: Any, incoming: list[Message] | None = None) -> None:
        self.heard = heard
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        for message in incoming or [{"type": "http.request", "body": b""}]:
            self.incoming.put_nowait(message)
        self.log: list[str] = []

    async def receive(self) -> Message:
        message = await self.incoming.get()
        self.log.append(f"received {message['type']}")
        return message

    async def send(self, message: Message) -> None:
        self.log.append(f"sent {message['type']}, signals so far: {self.heard.names()}")


async def respond(send: Any, *chunks: bytes, status: int = 200, **start: Any) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [], **start})
    for index, chunk in enumerate(chunks):
        more = index < len(chunks) - 1
        await send({"type": "http.response.body", "body": chunk, "more_body": more})


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await respond(send, b"hello")


def test_a_request_sends_started_with_the_scope_then_finished_after_the_response(
    hear: Any,
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)
    scope = http_scope("/menu")
    asyncio.run(SignalMiddleware(hello)(scope, client.receive, client.send))
    assert heard.events == [
        ("request_started", SignalMiddleware, {"scope": scope}),
        ("request_finished", SignalMiddleware, {}),
    ]
    assert client.log[-1] == "sent http.response.body, signals so far: ['request_started']"


def test_a_streamed_response_finishes_after_its_last_chunk(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)

    async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, b"one", b"two", b"three")
        client.log.append(f"app returns, signals so far: {heard.names()}")

    asyncio.run(SignalMiddleware(stream)(http_scope(), client.receive, client.send))
    assert client.log[-2:] == [
        "sent http.response.body, signals so far: ['request_started']",
        "app returns, signals so far: ['request_started', 'request_finished']",
    ]


def test_a_client_that_disconnects_midway_finishes_the_request_once(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)

    async def long_poll(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        client.incoming.put_nowait({"type": "http.disconnect"})
        message = await receive()
        assert message["type"] == "http.disconnect"
        client.log.append(f"app sees the disconnect, signals so far: {heard.names()}")

    asyncio.run(SignalMiddleware(long_poll)(http_scope(), client.receive, client.send))
    assert client.log[-1] == (
        "app sees the disconnect, signals so far: ['request_started', 'request_finished']"
    )
    assert heard.count("request_finished") == 1


def test_an_app_that_raises_before_responding_reports_then_finishes(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)
    seen: list[tuple[str, BaseException | None]] = []

    def look(sender: object, request: Any, **kwargs: Any) -> None:
        seen.append(("sync receiver", sys.exc_info()[1]))

    async def look_async(sender: object, request: Any, **kwargs: Any) -> None:
        seen.append(("async receiver", None))  # in a task of its own: no exception at hand

    async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise LookupError("no such pizza")

    catalogue.got_request_exception.connect(look)
    catalogue.got_request_exception.connect(look_async)
    scope = http_scope("/pizza/9")
    try:
        with pytest.raises(LookupError, match="no such pizza") as raised:
            asyncio.run(SignalMiddleware(broken)(scope, client.receive, client.send))
    finally:
        catalogue.got_request_exception.disconnect(look)
        catalogue.got_request_exception.disconnect(look_async)
    assert heard.names() == ["request_started", "got_request_exception", "request_finished"]
    assert heard.events[1][1:] == (None, {"request": scope})
    assert [who for who, _ in seen] == ["sync receiver", "async receiver"]
    assert seen == [("sync receiver", raised.value), ("async receiver", None)]
    assert client.log == []  # nothing was sent: the server answers 500 itself
    # The traceback the server logs is the app's own, without tocsin's reporting frames.
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert frames[-1] == "broken"
    assert "_report_in_this_thread" not in frames


def test_an_app_that_raises_midway_through_its_response_reports_then_finishes_once(
    hear: Any,
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)

    async def fails_midway(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        raise OSError("oven broken")

    with pytest.raises(OSError, match="oven broken"):
        asyncio.run(SignalMiddleware(fails_midway)(http_scope(), client.receive, client.send))
    assert heard.names() == ["request_started", "got_request_exception", "request_finished"]


def test_an_app_that_raises_after_responding_reports_without_finishing_twice(
    hear: Any,
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)

    async def fails_late(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, b"done")
        raise RuntimeError("cleanup failed")

    with pytest.raises(RuntimeError, match="cleanup failed"):
        asyncio.run(SignalMiddleware(fails_late)(http_scope(), client.receive, client.send))
    assert heard.names() == ["request_started", "request_finished", "got_request_exception"]


def test_an_app_that_returns_without_finishing_its_response_finishes_on_return(
    hear: Any,
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)

    async def forgetful(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})

    asyncio.run(SignalMiddleware(forgetful)(http_scope(), client.receive, client.send))
    assert heard.names() == ["request_started", "request_finished"]


def test_a_response_with_trailers_finishes_after_the_trailers(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)

    async def with_trailers(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await respond(send, b"body", trailers=True)
        await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})

    asyncio.run(SignalMiddleware(with_trailers)(http_scope(), client.receive, client.send))
    assert client.log[-2:] == [
        "sent http.response.body, signals so far: ['request_started']",
        "sent http.response.trailers, signals so far: ['request_started']",
    ]
    assert heard.names() == ["request_started", "request_finished"]


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_other_connections_pass_through_untouched(hear: Any, kind: str) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)
    seen: list[tuple[object, object, object]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    scope = {"type": kind}
    asyncio.run(SignalMiddleware(app)(scope, client.receive, client.send))
    assert seen == [(scope, client.receive, client.send)]
    assert heard.names() == []


def test_async_receivers_run_on_the_servers_loop_and_sync_ones_off_it(hear: Any) -> None:
    where: list[str] = []
    loop_thread: list[int] = []

    async def on_started(sender: object, **kwargs: Any) -> None:
        where.append("async on the loop" if asyncio.get_running_loop() is loop[0] else "elsewhere")

    def on_finished(sender: object, **kwargs: Any) -> None:
        on_loop = threading.get_ident() == loop_thread[0]
        where.append("sync on the loop thread" if on_loop else "sync in a worker thread")

    loop: list[asyncio.AbstractEventLoop] = []

    async def serve_one() -> None:
        loop.append(asyncio.get_running_loop())
        loop_thread.append(threading.get_ident())
        client = Client(hear())
        await SignalMiddleware(hello)(http_scope(), client.receive, client.send)

    catalogue.request_started.connect(on_started)
    catalogue.request_finished.connect(on_finished)
    try:
        asyncio.run(serve_one())
    finally:
        catalogue.request_started.disconnect(on_started)
        catalogue.request_finished.disconnect(on_finished)
    assert where == ["async on the loop", "sync in a worker thread"]


def test_concurrent_requests_each_finish_exactly_once(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)

    async def serve_many() -> None:
        async def one(number: int) -> None:
            client = Client(heard)

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                await receive()
                await asyncio.sleep(0)
                if number % 3 == 0:
                    raise RuntimeError("boom")
                await respond(send, b"a", b"b")

            with contextlib.suppress(RuntimeError):
                await SignalMiddleware(app)(http_scope(f"/{number}"), client.receive, client.send)

        await asyncio.gather(*(one(number) for number in range(60)))

    asyncio.run(serve_many())
    assert heard.count("request_started") == 60
    assert heard.count("request_finished") == 60
    assert heard.count("got_request_exception") == 20


def test_the_sender_can_be_chosen(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)
    asyncio.run(SignalMiddleware(hello, sender="shop")(http_scope(), client.receive, client.send))
    assert [sender for _, sender, _ in heard.events] == ["shop", "shop"]


@pytest.mark.usefixtures("strict_everywhere")
def test_the_signals_pass_strict_checks(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    client = Client(heard)
    asyncio.run(SignalMiddleware(hello)(http_scope(), client.receive, client.send))
    assert heard.names() == ["request_started", "request_finished"]


def test_the_middleware_refuses_something_that_is_not_an_app() -> None:
    with pytest.raises(TypeError, match="needs an ASGI application; got None"):
        SignalMiddleware(None)  # type: ignore[arg-type]
