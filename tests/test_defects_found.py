"""Defects found by the reliability suite, each as the behaviour it breaks.

Every test here fails on the current core; each states the expected behaviour and carries
the smallest reproduction found. Once a defect is fixed, its test belongs with the others of
its kind (test_reliability.py, test_bad_input.py, test_process.py).
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tocsin
from tocsin import Signal, catalogue, emit


def keep(**kwargs: Any) -> str:
    return "keep"


class Handler:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, **kwargs: Any) -> str:
        self.calls += 1
        return "handler"


class Model:
    pass


# -- dispatch_uid tokens released twice --------------------------------------------------------


def test_a_uid_shared_with_a_dead_senders_connection_still_names_its_other_connection() -> None:
    """A sender's death drops its connections but leaves them in a cycle until the collector
    runs; a weak receiver among them dying first must not release their dispatch_uid again."""
    signal = Signal(name="s")
    signal.connect(keep, sender="b", dispatch_uid="v")
    sender, handler = Model(), Handler()
    signal.connect(handler, sender=sender, dispatch_uid="v")  # the same uid, another sender
    del sender  # its connections go...
    del handler  # ...then the receiver dies, before the collector ran
    signal.connect(keep, sender="b", dispatch_uid="v")  # already connected: nothing changes
    assert signal.send("b") == [(keep, "keep")]
    assert signal.disconnect(dispatch_uid="v", sender="b") is True
    assert signal.connections() == []
    signal._ledger.check()


# -- strict mode ----------------------------------------------------------------------------------


class Relaying(Signal):
    """A subclass that overrides send and calls the class's own."""

    def send(self, sender: object, **named: Any) -> list[tuple[Any, Any]]:
        return super().send(sender, **named)


@pytest.mark.parametrize(
    "how",
    ["first send after send_robust", "subclass calling super().send", "Signal.send unbound"],
)
def test_strict_mode_refuses_a_send_missing_a_required_argument_every_time(how: str) -> None:
    signal = (Relaying if how.startswith("subclass") else Signal)(
        name="s", arguments=["order"], strict=True
    )
    signal.connect(keep)
    signal.send_robust(None, order=1)  # publishes what sends read
    for _ in range(3):
        with pytest.raises(TypeError, match="missing the required argument 'order'"):
            if how == "Signal.send unbound":
                Signal.send(signal, None)
            else:
                signal.send(None)


# -- a disconnected strong receiver stays referenced --------------------------------------------


@pytest.mark.parametrize("sent_since", [False, True])
def test_disconnecting_a_strong_receiver_lets_it_go(sent_since: bool) -> None:
    signal = Signal(name="s")
    handler = Handler()
    alive = weakref.ref(handler)
    signal.connect(handler, weak=False)
    signal.send(None)
    signal.disconnect(handler)
    if sent_since:
        signal.send(None)
    del handler
    gc.collect()
    assert alive() is None


def test_a_block_of_connected_to_lets_its_receiver_go() -> None:
    signal = Signal(name="s")
    handler = Handler()
    alive = weakref.ref(handler)
    with signal.connected_to(handler):
        signal.send(None)
    del handler
    gc.collect()
    assert alive() is None


# -- deaths the signal never learnt of -------------------------------------------------------------


def _depth() -> int:
    frame = sys._getframe(1)
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back  # type: ignore[assignment]
    return depth


def _at_depth(extra: int, action: Callable[[], object]) -> None:
    if extra <= 0:
        action()
    else:
        _at_depth(extra - 1, action)


def _near_the_limit(
    action: Callable[[], object], prepare: Callable[[], object] = lambda: None
) -> Iterator[None]:
    room = sys.getrecursionlimit() - _depth()
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None  # RecursionErrors of weakref callbacks
    try:
        for extra in range(room - 70, room + 2):
            prepare()
            with contextlib.suppress(RecursionError):
                _at_depth(extra, action)
            yield
    finally:
        sys.unraisablehook = previous


def test_a_new_receiver_at_an_unnoticed_dead_receivers_address_connects_for_its_sender(
    with_reused_address: Callable[[Callable[..., bool]], None],
) -> None:
    """Reproduction: a receiver connected for sender "auth" dies where its weakref callback
    cannot run; a new receiver at its address connecting for "auth" raises KeyError."""

    def scenario(reuse: Callable[..., Any]) -> bool:
        signal = Signal(name="s")
        holder: list[Handler] = []

        def prepare() -> None:
            handler = Handler()
            signal.connect(handler, sender="auth")
            holder.append(handler)

        for _ in _near_the_limit(holder.clear, prepare):
            holder.clear()
            group = signal._ledger.groups.get("auth")
            dead = [c for c in (group.members.values() if group else ()) if c() is None]
            if dead:
                break
        else:
            pytest.skip("no receiver died unnoticed at the recursion limit")
        newcomer = reuse(dead[0].ident, Handler)
        if newcomer is None:
            return False
        signal.connect(newcomer, sender="auth")
        assert signal.send("auth") == [(newcomer, "handler")]
        return True

    with_reused_address(scenario)


@pytest.mark.parametrize("sender", ["auth", Model()], ids=["by value", "object"])
def test_connections_whose_death_went_unnoticed_are_reclaimed(sender: object) -> None:
    """Any-sender connections a lost callback left behind are swept on the next send; those
    for one sender (and a dead sender's group) never are."""
    signal = Signal(name="s")
    holder: list[Handler] = []

    def prepare() -> None:
        handler = Handler()
        signal.connect(handler, sender=sender)
        holder.append(handler)

    for _ in _near_the_limit(holder.clear, prepare):
        holder.clear()
    gc.collect()
    signal.connect(keep, weak=False)
    signal.send(sender)
    signal.disconnect(keep)
    signal.send(sender)
    ledger = signal._ledger
    assert ledger.groups == {}, "dead connections still filed"


def test_disconnect_by_uid_at_the_recursion_limit_keeps_the_bookkeeping_consistent() -> None:
    signal = Signal(name="s")
    for _ in _near_the_limit(
        lambda: signal.disconnect(dispatch_uid="u"),
        prepare=lambda: signal.connect(keep, dispatch_uid="u"),
    ):
        signal.disconnect(dispatch_uid="u")
        signal._ledger.check()
    assert signal._ledger.uids == {}


def test_a_sender_dying_at_the_recursion_limit_keeps_the_bookkeeping_consistent() -> None:
    """Fails on Python 3.11, where C calls count towards the recursion limit: a sender's
    group is dropped but its cached route stays."""
    signal = Signal(name="s")
    signal.connect(keep)
    holder: list[Model] = []

    def prepare() -> None:
        sender = Model()
        signal.connect(keep, sender=sender)
        signal.send(sender)
        holder.append(sender)

    for _ in _near_the_limit(holder.clear, prepare):
        holder.clear()
        signal.send(Model())
        signal._ledger.check()


# -- errors from async receivers -------------------------------------------------------------------


def test_an_async_receivers_error_from_send_has_no_unrelated_context() -> None:
    signal = Signal(name="s")

    async def failing(**kwargs: Any) -> None:
        raise ValueError("receiver failed")

    signal.connect(failing)
    with pytest.raises(ValueError, match="receiver failed") as raised:
        signal.send(None)
    # Not "During handling of the above exception (RuntimeError: no running event loop)".
    context = raised.value.__context__
    assert context is None or raised.value.__suppress_context__, repr(context)


# -- an argument named "signal" --------------------------------------------------------------------


def test_an_argument_named_signal_is_refused_the_same_way_every_time() -> None:
    signal = Signal(name="s")
    outcomes = []
    for _ in range(2):
        try:
            signal.send(None, signal="oops")
        except TypeError:
            outcomes.append("refused")
        else:
            outcomes.append("accepted")
    assert outcomes[0] == outcomes[1], outcomes


# -- bad input accepted, or refused unclearly ------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "error", "pattern"),
    [
        (lambda: tocsin.set_strict("no"), TypeError, r"set_strict\(\).*True or False"),
        (lambda: Signal(name="x", doc=3), TypeError, "doc"),
        (lambda: Signal("x"), TypeError, "use_caching|providing_args"),
        (lambda: Signal(name="x", providing_args=3), TypeError, "providing_args"),
        (lambda: catalogue.group_of(3), TypeError, "catalogue signal"),
        (lambda: emit.model_signals(3), TypeError, "class"),
        (lambda: tocsin.load_entry_points(3), TypeError, "group"),
        (lambda: Signal(name="x").check_arguments(["order"]), TypeError, "mapping"),
    ],
    ids=[
        "set_strict('no')",
        "Signal(doc=3)",
        "Signal('x')",
        "Signal(providing_args=3)",
        "catalogue.group_of(3)",
        "emit.model_signals(3)",
        "load_entry_points(3)",
        "check_arguments(list)",
    ],
)
def test_bad_input_accepted_or_refused_unclearly(
    action: Callable[[], object], error: type[Exception], pattern: str
) -> None:
    previous = tocsin.set_strict(False)
    try:
        with pytest.raises(error, match=pattern):
            action()
    finally:
        tocsin.set_strict(previous)


def test_receiver_with_a_bad_keyword_names_the_signal() -> None:
    signal = Signal(name="orders")
    with pytest.raises(TypeError, match=r"<Signal 'orders'>.*bogus"):
        tocsin.receiver(signal, bogus=1)(keep)


# -- the command line and a closed pipe ---------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [["catalogue", "--json"], ["catalogue"], []],
    ids=["catalogue --json", "catalogue", "summary"],
)
def test_the_command_line_writing_to_a_closed_pipe_exits_quietly(arguments: list[str]) -> None:
    reading, writing = os.pipe()
    os.close(reading)  # the reader left before the first line was written
    try:
        finished = subprocess.run(
            [sys.executable, "-m", "tocsin", *arguments],
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writing)
    assert finished.stderr == ""
