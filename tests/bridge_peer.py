"""Processes at either end of a bridge, for the tests that cross process boundaries.

As a script: ``python bridge_peer.py listen|send redis|postgres ADDRESS COUNT``. A listener
prints ``ready`` once subscribed, records the ``n`` of every ``ticks`` message, and after a
line on its standard input (the sender has finished) waits for COUNT messages and prints
them as JSON. A sender sends ``ticks`` with n = 0 .. COUNT-1, stops its bridge (which
publishes everything queued) and prints its stats.

As a module: ``three_processes()`` runs two listeners and one sender and returns what each
listener received.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

TIMEOUT = 60.0  # seconds any one step may take before the test fails


def _transport(kind: str, address: str) -> Any:
    if kind == "redis":
        from tocsin.bridge.redis import RedisTransport

        return RedisTransport(address)
    from tocsin.bridge.postgres import PostgresTransport

    return PostgresTransport(address)


def _listen(kind: str, address: str, count: int) -> None:
    from tocsin import Signal
    from tocsin.bridge import Bridge

    ticks = Signal(name="ticks")
    received: list[int] = []
    enough = threading.Event()

    def on_tick(sender: object, n: int, **kwargs: Any) -> None:
        received.append(n)
        if len(received) >= count:
            enough.set()

    ticks.connect(on_tick)
    bridge = Bridge(_transport(kind, address))
    bridge.listen(ticks)
    with bridge:
        if not bridge.health().connected:
            raise SystemExit(f"listener not connected: {bridge.health()}")
        print("ready", flush=True)
        sys.stdin.readline()
        enough.wait(TIMEOUT)
    print(json.dumps(received), flush=True)


def _send(kind: str, address: str, count: int) -> None:
    from tocsin import Signal
    from tocsin.bridge import Bridge

    ticks = Signal(name="ticks")
    bridge = Bridge(_transport(kind, address))
    bridge.forward(ticks)
    with bridge:
        for n in range(count):
            ticks.send(sender=None, n=n)
    print(json.dumps(bridge.stats.sent), flush=True)


def _spawn(role: str, kind: str, address: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__)), role, kind, address, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        raise TimeoutError("a bridge peer did not say it was ready in time")
    return process.stdout.readline().strip()


def three_processes(kind: str, address: str, count: int) -> list[list[int]]:
    """Two listening processes and one sending ``count`` ticks; what each listener got."""
    listeners = [_spawn("listen", kind, address, count) for _ in range(2)]
    processes = list(listeners)
    try:
        deadline = time.monotonic() + TIMEOUT
        for listener in listeners:
            line = _read_line(listener, deadline)
            if line != "ready":
                _, errors = listener.communicate(timeout=TIMEOUT)
                raise AssertionError(f"listener failed to start: {line!r} {errors}")
        sender = _spawn("send", kind, address, count)
        processes.append(sender)
        output, errors = sender.communicate(timeout=TIMEOUT)
        assert sender.returncode == 0, errors
        assert json.loads(output) == count, "the sender's bridge did not publish every send"
        results = []
        for listener in listeners:
            output, errors = listener.communicate("done\n", timeout=TIMEOUT)
            assert listener.returncode == 0, errors
            results.append(json.loads(output.splitlines()[-1]))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()


if __name__ == "__main__":
    role, kind, address, count = sys.argv[1:]
    (_listen if role == "listen" else _send)(kind, address, int(count))
