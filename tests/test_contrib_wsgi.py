"""tocsin.contrib.wsgi: the request signals around a WSGI application, on a real server."""

from __future__ import annotations

import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import FileWrapper

import pytest

from tocsin import catalogue
from tocsin.contrib.wsgi import SignalMiddleware

REQUEST_SIGNALS = (
    catalogue.request_started,
    catalogue.got_request_exception,
    catalogue.request_finished,
)
TIMEOUT = 10.0


class ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 256  # 200 clients connect at once in the concurrency test

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Requests still being handled: a test ends only when each has sent its last
        # signal, so that a late request_finished cannot reach the next test's listeners.
        self.in_flight = 0
        self.idle = threading.Condition()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.idle:
            self.in_flight += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self.idle:
            self.in_flight -= 1
            self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self.idle:
            return self.idle.wait_for(lambda: self.in_flight == 0, timeout)


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr; errors still go to the server's error stream."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[..., Iterable[bytes]]], str]]:
    """``serve(app)`` runs ``app`` on a threaded wsgiref server on 127.0.0.1; returns its URL."""
    running: list[tuple[ThreadingServer, threading.Thread]] = []

    def start(app: Callable[..., Iterable[bytes]]) -> str:
        server = make_server(
            "127.0.0.1", 0, app, server_class=ThreadingServer, handler_class=QuietHandler
        )
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in running:
        server.shutdown()
        assert server.wait_idle(TIMEOUT), "a request was still being handled"
        server.server_close()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read(), dict(error.headers)


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello ", environ["PATH_INFO"].encode()]


def finished(heard: Any) -> bool:
    return "request_finished" in heard.names()


# --- on a real server -----------------------------------------------------------------------------


def test_a_request_sends_started_with_the_environ_then_finished(serve: Any, hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    url = serve(SignalMiddleware(hello))
    assert get(url + "/menu")[:2] == (200, b"hello /menu")
    heard.wait_for(finished)
    assert heard.names() == ["request_started", "request_finished"]
    (_, started_by, started_with), (_, finished_by, finished_with) = heard.events
    assert started_by is SignalMiddleware
    assert list(started_with) == ["environ"]
    assert started_with["environ"]["PATH_INFO"] == "/menu"
    assert (finished_by, finished_with) == (SignalMiddleware, {})


def test_a_sized_response_keeps_its_length_so_the_server_can_set_content_length(
    serve: Any,
) -> None:
    def one_piece(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"exactly this"]

    url = serve(SignalMiddleware(one_piece))
    _, _, headers = get(url)
    assert headers["Content-Length"] == "12"


def test_a_streaming_response_finishes_when_the_server_is_done_not_when_the_app_returns(
    serve: Any, hear: Any
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    carry_on = threading.Event()
    log: list[str] = []

    def stream(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield b"first\n"
            assert carry_on.wait(TIMEOUT)
            yield b"second\n"
        finally:
            log.append(f"generator closed, finished sent {heard.count('request_finished')}x")

    url = serve(SignalMiddleware(stream))
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.readline() == b"first\n"
        # The application has long returned its generator; the response is still going.
        assert heard.names() == ["request_started"]
        carry_on.set()
        assert response.read() == b"second\n"
    heard.wait_for(finished)
    assert heard.names() == ["request_started", "request_finished"]
    assert log == ["generator closed, finished sent 0x"]  # closed first, then finished


def test_a_failing_app_gets_a_500_and_sends_the_exception_then_finished(
    serve: Any, hear: Any
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    seen: list[BaseException | None] = []

    def look(sender: object, request: dict[str, Any], **kwargs: Any) -> None:
        seen.append(sys.exc_info()[1])

    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise LookupError("no such pizza")

    catalogue.got_request_exception.connect(look)
    try:
        url = serve(SignalMiddleware(broken))
        status, _, _ = get(url + "/pizza/9")
        heard.wait_for(finished)
    finally:
        catalogue.got_request_exception.disconnect(look)
    assert status == 500
    assert heard.names() == ["request_started", "got_request_exception", "request_finished"]
    _, sender, arguments = heard.events[1]
    assert sender is None
    assert arguments["request"]["PATH_INFO"] == "/pizza/9"
    assert isinstance(seen[0], LookupError)
    assert str(seen[0]) == "no such pizza"


def test_a_response_that_fails_before_its_first_chunk_gets_a_500(serve: Any, hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)

    def fails_lazily(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        raise OSError("oven broken")
        yield b"never"  # a generator: the error comes when the server asks for a chunk

    url = serve(SignalMiddleware(fails_lazily))
    assert get(url)[0] == 500
    heard.wait_for(finished)
    assert heard.names() == ["request_started", "got_request_exception", "request_finished"]


def test_a_response_that_fails_midway_reports_it_and_finishes_once(serve: Any, hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)

    def fails_midway(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"half a pizza\n"
        raise OSError("oven broken")

    url = serve(SignalMiddleware(fails_midway))
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.readline() == b"half a pizza\n"
    heard.wait_for(finished)
    assert heard.names() == ["request_started", "got_request_exception", "request_finished"]


def test_a_file_wrapper_response_reaches_the_server_as_it_is(
    serve: Any, hear: Any, tmp_path: Any
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    menu = tmp_path / "menu.txt"
    menu.write_bytes(b"margherita\n" * 1000)
    opened: list[Any] = []

    def download(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        opened.append(menu.open("rb"))
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](opened[0], 4096)
        return wrapper

    url = serve(SignalMiddleware(download))
    assert get(url)[1] == menu.read_bytes()
    heard.wait_for(finished)
    assert heard.names() == ["request_started", "request_finished"]
    assert opened[0].closed


def test_the_server_gets_the_apps_own_file_wrapper_object(hear: Any, tmp_path: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    (tmp_path / "menu.txt").write_bytes(b"diavola")
    wrappers: list[FileWrapper] = []

    def download(environ: dict[str, Any], start_response: Any) -> FileWrapper:
        wrappers.append(FileWrapper((tmp_path / "menu.txt").open("rb")))
        return wrappers[0]

    result = SignalMiddleware(download)({"wsgi.file_wrapper": FileWrapper}, None)
    assert result is wrappers[0]  # so a server can recognise it and use sendfile
    assert b"".join(result) == b"diavola"
    result.close()  # type: ignore[attr-defined]
    result.close()  # type: ignore[attr-defined]
    assert heard.names() == ["request_started", "request_finished"]


def test_every_started_request_finishes_exactly_once_under_200_concurrent_requests(
    serve: Any, hear: Any
) -> None:
    started: list[str] = []
    finished_: list[str] = []
    current = threading.local()
    record = threading.Condition()

    def on_started(sender: object, environ: dict[str, Any], **kwargs: Any) -> None:
        assert getattr(current, "request", None) is None, "a request started inside another"
        current.request = environ["QUERY_STRING"]
        with record:
            started.append(current.request)

    def on_finished(sender: object, **kwargs: Any) -> None:
        with record:
            finished_.append(current.request)
            record.notify_all()
        current.request = None

    def mixed(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        number = int(environ["QUERY_STRING"])
        if number % 10 == 3:
            raise RuntimeError(f"request {number} fails")
        start_response("200 OK", [("Content-Type", "text/plain")])
        if number % 2:
            return (piece for piece in (b"stream ", str(number).encode()))
        return [b"list ", str(number).encode()]

    catalogue.request_started.connect(on_started)
    catalogue.request_finished.connect(on_finished)
    try:
        url = serve(SignalMiddleware(mixed))
        with ThreadPoolExecutor(max_workers=50) as pool:
            results = list(pool.map(lambda n: get(f"{url}/?{n}"), range(200)))
        with record:  # the last closes may trail the last responses
            assert record.wait_for(lambda: len(finished_) == 200, TIMEOUT)
    finally:
        catalogue.request_started.disconnect(on_started)
        catalogue.request_finished.disconnect(on_finished)
    assert [status for status, _, _ in results].count(500) == 20
    expected = sorted(str(n) for n in range(200))
    assert sorted(started) == expected
    assert sorted(finished_) == expected


# --- called directly, for what a server rarely does ---------------------------------------------


class Closing:
    """A response iterable that records its iteration and its close."""

    def __init__(self, fail_on_close: bool = False) -> None:
        self.log: list[str] = []
        self.fail_on_close = fail_on_close

    def __iter__(self) -> Iterator[bytes]:
        self.log.append("iterated")
        return iter([b"ok"])

    def close(self) -> None:
        self.log.append("closed")
        if self.fail_on_close:
            raise OSError("could not release the oven")


def test_closing_twice_finishes_once(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    response = Closing()
    result = SignalMiddleware(lambda environ, start_response: response)({}, None)
    assert list(result) == [b"ok"]
    result.close()  # type: ignore[attr-defined]
    result.close()  # type: ignore[attr-defined]
    assert response.log == ["iterated", "closed"]
    assert heard.names() == ["request_started", "request_finished"]


def test_a_response_never_iterated_still_finishes_when_closed(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    ran: list[str] = []

    def generator_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        ran.append("body")
        yield b"never read"

    result = SignalMiddleware(generator_app)({}, None)
    result.close()  # type: ignore[attr-defined]
    assert ran == []
    assert heard.names() == ["request_started", "request_finished"]


def test_an_error_from_the_responses_close_is_reported_and_the_request_still_finishes(
    hear: Any,
) -> None:
    heard = hear(*REQUEST_SIGNALS)
    response = Closing(fail_on_close=True)
    result = SignalMiddleware(lambda environ, start_response: response)({}, None)
    list(result)
    with pytest.raises(OSError, match="release the oven"):
        result.close()  # type: ignore[attr-defined]
    assert heard.names() == ["request_started", "got_request_exception", "request_finished"]
    result.close()  # type: ignore[attr-defined]
    assert heard.count("request_finished") == 1


def test_a_failing_exception_receiver_does_not_hide_the_apps_error(
    hear: Any, caplog: pytest.LogCaptureFixture
) -> None:
    heard = hear(*REQUEST_SIGNALS)

    def clumsy(sender: object, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise LookupError("the app's error")

    catalogue.got_request_exception.connect(clumsy)
    try:
        with pytest.raises(LookupError, match="the app's error"):
            SignalMiddleware(broken)({}, None)
    finally:
        catalogue.got_request_exception.disconnect(clumsy)
    assert heard.names() == ["request_started", "got_request_exception", "request_finished"]
    assert "receiver bug" in caplog.text


def test_a_failing_started_receiver_stops_the_request_before_the_app(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    called: list[str] = []

    def refuse(sender: object, **kwargs: Any) -> None:
        raise PermissionError("closed for the night")

    catalogue.request_started.connect(refuse)
    try:
        with pytest.raises(PermissionError):
            SignalMiddleware(lambda environ, start_response: called or [b""])({}, None)
    finally:
        catalogue.request_started.disconnect(refuse)
    assert called == []
    assert heard.names() == ["request_started"]  # as in Django: nothing else is sent


def test_the_sender_can_be_chosen(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    SignalMiddleware(hello, sender="shop")({"PATH_INFO": "/"}, lambda *args: None).close()  # type: ignore[attr-defined]
    assert [sender for _, sender, _ in heard.events] == ["shop", "shop"]


@pytest.mark.usefixtures("strict_everywhere")
def test_the_signals_pass_strict_checks(hear: Any) -> None:
    heard = hear(*REQUEST_SIGNALS)
    result = SignalMiddleware(hello)({"PATH_INFO": "/"}, lambda *args: None)
    result.close()  # type: ignore[attr-defined]
    with pytest.raises(ZeroDivisionError):
        SignalMiddleware(lambda environ, start_response: [1 / 0])({}, None)  # type: ignore[list-item]
    assert heard.count("request_finished") == 2


def test_the_middleware_refuses_something_that_is_not_an_app() -> None:
    with pytest.raises(TypeError, match="needs a WSGI application; got 'app'"):
        SignalMiddleware("app")  # type: ignore[arg-type]
