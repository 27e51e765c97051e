"""tocsin.demo and ``python -m tocsin demo``: the shop, run as a newcomer would run it."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator

import pytest

TIMEOUT = 60


@pytest.fixture(scope="module")
def demo() -> subprocess.CompletedProcess[str]:
    """One run of ``python -m tocsin demo``, in a process of its own as a user would run it
    (importing the demo's receivers connects them for good)."""
    return subprocess.run(
        [sys.executable, "-m", "tocsin", "demo"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_demo_command_shows_every_signal_and_exits_0(
    demo: subprocess.CompletedProcess[str],
) -> None:
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr == ""  # the failing request's traceback is not shown, its signal is
    output = demo.stdout
    for expected in (
        "POST /pizzas name=margherita  ->  201 Created",
        "request_started        sender=SignalMiddleware  environ=<WSGI environ: POST /pizzas>",
        "connection_created     sender=Connection",
        "post_save              sender=Pizza  created=True  instance=Pizza(name='margherita'",
        "post_save              sender=Pizza  created=False",
        "post_delete            sender=Pizza",
        "GET /kitchen  ->  500 Internal Server Error",
        "(sys.exc_info(): RuntimeError('the oven is on fire'))",
    ):
        assert expected in output
    assert output.count("request_started") == output.count("request_finished") == 4


def test_each_request_lists_its_signals_in_the_order_they_fired(
    demo: subprocess.CompletedProcess[str],
) -> None:
    requests = [block.splitlines() for block in demo.stdout.split("\n\n")[1:-1]]
    assert [[line.split()[0] for line in block[1:]] for block in requests] == [
        ["request_started", "connection_created", "pre_save", "post_save", "request_finished"],
        ["request_started", "connection_created", "pre_save", "post_save", "request_finished"],
        ["request_started", "connection_created", "pre_delete", "post_delete", "request_finished"],
        ["request_started", "got_request_exception", "request_finished"],
    ]


def test_with_a_port_the_demo_serves_a_browser_until_interrupted() -> None:
    # Ctrl-C in a terminal is what this stands for. A shell that started the tests in the
    # background (`pytest &` in a script) leaves SIGINT ignored, and a child would inherit
    # that: while the demo starts, SIGINT is handled here, which a child resets to the default.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "tocsin", "demo", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        if inherited is not None:  # None: a handler not set from Python, left as it is
            signal.signal(signal.SIGINT, inherited)
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout])  # type: ignore[union-attr]
    reader.start()
    try:
        banner = lines.get(timeout=TIMEOUT)
        assert banner.startswith("tocsin demo shop at http://127.0.0.1:")
        url = banner.split()[4]
        with urllib.request.urlopen(url, timeout=TIMEOUT) as page:
            assert b"tocsin demo shop" in page.read()
        shown = [lines.get(timeout=TIMEOUT).split()[0] for _ in range(3)]
        assert shown == ["request_started", "connection_created", "request_finished"]
        process.send_signal(signal.SIGINT)
        assert process.wait(TIMEOUT) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(TIMEOUT)
        reader.join(TIMEOUT)
        process.stdout.close()
        assert process.stderr is not None
        process.stderr.close()


def test_a_port_in_use_is_a_clear_error(held_port: int) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "tocsin", "demo", "--port", str(held_port)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert finished.returncode == 2
    assert f"cannot serve on port {held_port}" in finished.stderr


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port on 127.0.0.1 that a listening socket holds for the test."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]
