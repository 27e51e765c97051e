"""Process-wide events, each in a new interpreter: fork, interpreter shutdown, ``python -bb``,
async receivers that exit the program. (The command line writing to a closed pipe is tested in
test_reliability.py.)

Each test runs a script with ``sys.executable`` and judges its exit status and what it
printed: a hang is killed after a timeout and fails the test (see the ``run_python``
fixture).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import pytest

RunPython = Callable[..., subprocess.CompletedProcess[str]]

# -- fork -------------------------------------------------------------------------------------

FORK_WHILE_LOCKED = """
import os, sys, threading, traceback, warnings
import tocsin
from tocsin import Signal, _registry

# Forking a process that has threads is what this test is about.
warnings.filterwarnings("ignore", ".*fork", DeprecationWarning)

signal = Signal(name="s", arguments=["order"])


def heard(**kwargs):
    return "heard"


def late(**kwargs):
    return "late"


signal.connect(heard)
signal.send(None, order=1)
LOCK = {lock}
locked, release = threading.Event(), threading.Event()


def hold():
    with LOCK:
        locked.set()
        release.wait(60)


holder = threading.Thread(target=hold)
holder.start()
assert locked.wait(10)
pid = os.fork()
if pid == 0:
    try:
        signal.connect(late)
        assert signal.send(None, order=2) == [(heard, "heard"), (late, "late")]
        assert signal.send_robust("x", order=3) == [(heard, "heard"), (late, "late")]
        assert signal.disconnect(late) is True
        signal._ledger.check()
        assert tocsin.set_strict(True) is False
        try:
            signal.send(None, ordr=4)
        except TypeError:
            pass
        else:
            raise AssertionError("strict mode did not reach the signal")
        tocsin.set_strict(False)
        fresh = Signal(name="made in the child")
        fresh.connect(late)
        assert fresh.send(1) == [(late, "late")]
        assert len(_registry.live_signals()) >= 2
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)
release.set()
holder.join()
for _ in range(2000):  # 20 s at most
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    threading.Event().wait(0.01)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    sys.exit("the child hung: it inherited a lock held by a thread it does not have")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is not available here")
@pytest.mark.parametrize(
    "lock",
    ["signal._ledger.lock", "_registry._lock"],
    ids=["the signal's lock", "the registry's lock"],
)
def test_a_child_forked_while_another_thread_holds_a_lock_connects_and_sends(
    run_python: RunPython, lock: str
) -> None:
    finished = run_python(FORK_WHILE_LOCKED.replace("{lock}", lock), timeout=60)
    assert finished.stderr == ""
    assert finished.returncode == 0


# -- interpreter shutdown -----------------------------------------------------------------------

SHUTDOWN = """
import asyncio, functools, gc, threading
import tocsin
from tocsin import Signal, receiver

saved = Signal(name="saved", arguments=["instance", "created"])
deleted = Signal(name="deleted", doc="Sent after a delete.")
never_sent = Signal(name="never sent")


class Model:
    pass


class Handler:
    def __init__(self, signal, other):
        self.signal = signal
        self.other = other
        self.cycle = self  # freed by the collector, late in shutdown

    def __call__(self, **kwargs):
        return "handler"

    def on_saved(self, **kwargs):
        return "method"

    def __del__(self):
        # Whatever tocsin has already torn down, a finalizer may still use a signal.
        self.signal.connect(self.other, weak=False)
        self.signal.disconnect(self.other)


@receiver([saved, deleted])
def everywhere(**kwargs):
    return "everywhere"


async def later(**kwargs):
    return "later"


def never_runs(**kwargs):
    return "never"


instance = Model()
handler = Handler(saved, never_runs)
strong = Handler(deleted, never_runs)
saved.connect(handler)
saved.connect(handler.on_saved, sender=instance)
saved.connect(functools.partial(everywhere), weak=False, dispatch_uid="partial")
saved.connect(later)
deleted.connect(strong, weak=False, sender=instance)
deleted.connect(everywhere, sender="auth", dispatch_uid=b"auth")
never_sent.connect(never_runs)  # never sent: its death at exit is no news
assert len(saved.send(instance, instance=instance, created=True)) == 5
assert asyncio.run(saved.asend(Model(), instance=None, created=False))
assert deleted.send_robust(instance)
tocsin.set_strict(True)
muted = deleted.muted()
muted.__enter__()  # left open at exit
def keep_sending():
    for _ in range(2000):
        saved.send(Model(), instance=1, created=0)


worker = threading.Thread(target=keep_sending)
worker.start()  # may still be sending when the main module ends
"""


@pytest.mark.parametrize("flags", [(), ("-X", "dev")], ids=["default", "dev mode"])
def test_interpreter_shutdown_with_live_signals_prints_nothing(
    run_python: RunPython, flags: tuple[str, ...]
) -> None:
    finished = run_python(SHUTDOWN, *flags)
    assert finished.stderr == ""
    assert finished.stdout == ""
    assert finished.returncode == 0


# -- python -bb --------------------------------------------------------------------------------

BYTES_AND_STR = """
import asyncio
from tocsin import Signal

signal = Signal(name="s")


def text(**kwargs):
    return "text"


def data(**kwargs):
    return "data"


signal.connect(text, sender="abc")
signal.connect(data, sender=b"abc")
signal.connect(text, dispatch_uid="a")
signal.connect(data, dispatch_uid=b"a")
signal.connect(text, sender=b"abc", dispatch_uid="a")
signal.connect(data, sender="abc", dispatch_uid=b"a")
for _ in range(2):  # the first send publishes the connections; the second reads them
    assert [r for r, _ in signal.send("abc")] == [text, text, data, data]
    assert [r for r, _ in signal.send_robust(b"abc")] == [data, text, data, text]
    assert asyncio.run(signal.asend("abc"))[0] == (text, "text")
assert signal.has_listeners(b"abc") and signal.receivers_for("abc")[0] is text
assert len(signal.connections()) == 6
assert signal.disconnect(dispatch_uid="a") and signal.disconnect(dispatch_uid=b"a")
assert signal.disconnect(dispatch_uid=b"a", sender="abc")
assert signal.disconnect(dispatch_uid="a", sender=b"abc")
assert not signal.disconnect(dispatch_uid="a", sender=b"abc")
assert signal.disconnect(text, sender="abc") and signal.disconnect(data, sender=b"abc")
assert signal.connections() == []
signal._ledger.check()
"""


def test_str_and_bytes_senders_and_uids_raise_no_bytes_warning(run_python: RunPython) -> None:
    finished = run_python(BYTES_AND_STR, "-bb", "-W", "error")
    assert finished.stderr == ""
    assert finished.returncode == 0


# -- async receivers that exit the program ----------------------------------------------------

EXITING = """
import asyncio, gc, sys
from tocsin import Signal

signal = Signal(name="s")
how, method, caught = {how!r}, {method!r}, {caught!r}


async def leaving(**kwargs):
    if how == "exit":
        sys.exit(3)
    raise KeyboardInterrupt


async def waiting(**kwargs):
    await asyncio.sleep(10)


def first(**kwargs):
    return "first"


signal.connect(first)
signal.connect(waiting)
signal.connect(leaving)


def run():
    if method in ("send", "send_robust"):
        getattr(signal, method)(None)
    elif method == "send in a running loop":
        async def main():
            signal.send(None)
        asyncio.run(main())
    else:
        asyncio.run(getattr(signal, method)(None))


if caught == "caught":
    try:
        run()
    except (SystemExit, KeyboardInterrupt) as stopped:
        gc.collect()
        print(type(stopped).__name__, getattr(stopped, "code", ""))
    else:
        print("nothing raised")
else:
    run()
"""


@pytest.mark.parametrize("caught", ["caught", "uncaught"])
@pytest.mark.parametrize(
    "method", ["send", "send_robust", "send in a running loop", "asend", "asend_robust"]
)
@pytest.mark.parametrize("how", ["exit", "interrupt"])
def test_an_async_receiver_that_exits_stops_the_program_quietly(
    run_python: RunPython, how: str, method: str, caught: str
) -> None:
    finished = run_python(EXITING.format(how=how, method=method, caught=caught))
    assert "never retrieved" not in finished.stderr
    if caught == "caught":
        assert finished.stderr == ""
        assert finished.stdout == ("SystemExit 3\n" if how == "exit" else "KeyboardInterrupt \n")
    elif how == "exit":
        assert finished.stderr == ""
        assert finished.returncode == 3
    else:
        # Python reports an uncaught KeyboardInterrupt with its traceback.
        assert finished.stderr.rstrip().endswith("\nKeyboardInterrupt")
