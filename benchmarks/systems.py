"""The systems under test, each driven through the same small interface.

Every system builds its own signal, makes its own receivers (fresh function objects with the
signature it calls), connects them weakly where it can, and is timed on the same send: a
sender plus two keyword arguments, ``instance`` and ``created``. The peers are imported only
when their system is built, so the suite runs with none of them installed.
"""

from __future__ import annotations

import importlib.metadata
import sys
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import call
from time import perf_counter_ns
from typing import Any

from benchmarks.engine import Timer

Receiver = Callable[..., object]
Responses = list[tuple[Receiver, object]]

# The peers the full suite compares with, by the name their system answers to.
PEERS = ("django", "blinker", "psygnal")


class Sender:
    """Stands in for a model class: hashable and weakly referenceable."""


# The ``instance`` argument of every send; what it is does not matter, only that it is shared.
INSTANCE = Sender()


# A timer spells its call out as a user's code would: the attribute is looked up at every call
# (``signal.send(...)``, not a pre-bound ``send(...)``), since that lookup is part of what a
# send costs where signals are used. Each timer is compiled afresh, so that each contender
# has a call site of its own: CPython specialises a call site for the types it sees, and one
# shared by all contenders would be re-specialised, or left generic, as they take turns.
_TIMER_SOURCE = """\
def timer(loops):
    start = perf_counter_ns()
    for _ in repeat(None, loops):
        target.{method}(sender, {arguments})
    return perf_counter_ns() - start
"""
_ARGUMENTS = {
    "send": "instance=instance, created=True",
    "send_robust": "instance=instance, created=True",
    "emit": "instance, True",
}


def send_timer(target: Any, sender: object, method: str = "send") -> Timer:
    """A timer calling ``target.send(sender, instance=..., created=True)`` (or ``method``)."""
    namespace: dict[str, Any] = {
        "perf_counter_ns": perf_counter_ns,
        "repeat": repeat,
        "target": target,
        "sender": sender,
        "instance": INSTANCE,
    }
    source = _TIMER_SOURCE.format(method=method, arguments=_ARGUMENTS[method])
    exec(compile(source, f"<timer of {method}>", "exec"), namespace)
    timer: Timer = namespace["timer"]
    return timer


def keyword_receiver() -> Receiver:
    """A new receiver function taking ``(sender, **named)``, Django's receiver signature."""

    def receiver(sender: object, **named: object) -> None:
        return None

    return receiver


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class System(ABC):
    """One dispatcher: how to build its signal and receivers, connect them, and time a send."""

    name: str
    label: str

    @property
    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def signal(self) -> Any: ...

    # Whether receivers can listen to one sender only (psygnal has no notion of a sender).
    filters_senders = True

    def receiver(self) -> Receiver:
        return keyword_receiver()

    def connect(self, signal: Any, receiver: Receiver, sender: object = None) -> None:
        signal.connect(receiver, sender=sender)

    def send_timer(self, signal: Any, sender: object) -> Timer:
        return send_timer(signal, sender)

    def reached(self, signal: Any, sender: object) -> int:
        """How many receivers a send from ``sender`` reaches now."""
        return len(signal.send(sender, instance=INSTANCE, created=True))

    def verify(self, signal: Any, sender: object, expected: int) -> None:
        """Fail loudly if a send would not reach ``expected`` receivers: timing it would mislead."""
        reached = self.reached(signal, sender)
        if reached != expected:
            raise RuntimeError(
                f"{self.label}: a send reached {reached} receivers where {expected} are connected"
            )

    def connected(self, receivers: int, sender: object = None) -> tuple[Any, list[Receiver]]:
        """A new signal with ``receivers`` receivers, and the list that keeps them alive.

        The signal has been sent once, from ``sender`` (or any sender), to check it.
        """
        signal = self.signal()
        alive = [self.receiver() for _ in range(receivers)]
        for receiver in alive:
            self.connect(signal, receiver, sender)
        self.verify(signal, Sender() if sender is None else sender, receivers)
        return signal, alive


class Tocsin(System):
    """tocsin.Signal; ``options`` are passed to the constructor (``arguments``, ``strict``...)."""

    name = "tocsin"
    label = "tocsin"

    def __init__(self, **options: Any) -> None:
        self.options = options

    @property
    def version(self) -> str:
        return _version("tocsin")

    def signal(self) -> Any:
        import tocsin

        return tocsin.Signal(**self.options)


class Django(System):
    """django.dispatch.Signal, with or without its per-sender cache."""

    def __init__(self, *, use_caching: bool) -> None:
        self.use_caching = use_caching
        self.name = "django" if use_caching else "django-nocache"
        self.label = f"django.dispatch (use_caching={use_caching})"

    @property
    def version(self) -> str:
        return _version("django")

    def signal(self) -> Any:
        # django.dispatch reads settings only to check receivers when settings.DEBUG is on;
        # with settings left unconfigured it skips that check, as a production site does.
        from django.dispatch import Signal

        return Signal(use_caching=self.use_caching)


class Blinker(System):
    """blinker.Signal: receivers take ``(sender, **kwargs)``; ``sender=None`` means any sender."""

    name = "blinker"
    label = "blinker"

    @property
    def version(self) -> str:
        return _version("blinker")

    def signal(self) -> Any:
        import blinker

        return blinker.Signal()

    def connect(self, signal: Any, receiver: Receiver, sender: object = None) -> None:
        if sender is None:
            signal.connect(receiver)
        else:
            signal.connect(receiver, sender=sender)


class Psygnal(System):
    """psygnal.SignalInstance of three positional values; it has no notion of a sender.

    ``emit(sender, instance, created)`` calls every receiver with the three values and
    returns None (psygnal collects no responses), and plain functions are held strongly.
    """

    name = "psygnal"
    label = "psygnal"
    filters_senders = False

    @property
    def version(self) -> str:
        from psygnal import _compiled

        return f"{_version('psygnal')} ({'compiled' if _compiled else 'pure Python'})"

    def signal(self) -> Any:
        from psygnal import SignalInstance

        return SignalInstance((object, object, object))

    def receiver(self) -> Receiver:
        def receiver(sender: object, instance: object, created: object) -> None:
            return None

        return receiver

    def connect(self, signal: Any, receiver: Receiver, sender: object = None) -> None:
        if sender is not None:
            raise ValueError("psygnal has no per-sender connections")
        signal.connect(receiver)

    def reached(self, signal: Any, sender: object) -> int:
        signal.emit(sender, INSTANCE, True)
        return len(signal)  # every connected receiver is called: there is no sender to filter

    def send_timer(self, signal: Any, sender: object) -> Timer:
        return send_timer(signal, sender, "emit")


class SpelledOutLoop:
    """The floor: the loop a programmer would write by hand for this one signal.

    It holds its receivers strongly, calls each with the keywords spelled out, exactly as a
    dispatcher must call them (``signal=``, ``sender=`` and the two arguments), and builds the
    same list of ``(receiver, response)`` pairs, in a plain ``for`` loop.
    """

    def __init__(self, receivers: Sequence[Receiver]) -> None:
        self.receivers = list(receivers)

    def send(self, sender: object, *, instance: object, created: object) -> Responses:
        responses = []
        for receiver in self.receivers:
            responses.append(
                (receiver, receiver(signal=self, sender=sender, instance=instance, created=created))
            )
        return responses


class NoOp:
    """The floor with no receivers: a method with ``send``'s signature that returns ``[]``."""

    def send(self, sender: object, **named: object) -> Responses:
        return []


class ResolvingLoop:
    """The floor, holding its receivers weakly and resolving them all before calling any.

    That is what a dispatcher of weak receivers must do so that a receiver dropping the last
    reference to a later one cannot make it skip: the gap between this loop and the floor is
    the least such a dispatcher can cost on top of the floor, per receiver.
    """

    def __init__(self, receivers: Sequence[Receiver]) -> None:
        self.references = [weakref.ref(receiver) for receiver in receivers]

    if sys.version_info >= (3, 12):  # the cheapest idiom on each: comprehensions are inlined

        def resolve(self) -> list[Receiver | None]:
            return [reference() for reference in self.references]

    else:

        def resolve(self) -> list[Receiver | None]:
            return [*map(call, self.references)]

    def send(self, sender: object, *, instance: object, created: object) -> Responses:
        responses = []
        for receiver in self.resolve():
            if receiver is not None:
                responses.append(
                    (
                        receiver,
                        receiver(signal=self, sender=sender, instance=instance, created=created),
                    )
                )
        return responses


def peer_systems(peers: Sequence[str]) -> list[System]:
    """The systems for the named peers, in the order the report shows them."""
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise ValueError(f"unknown peers {sorted(unknown)}; the suite knows {list(PEERS)}")
    systems: list[System] = []
    if "django" in peers:
        systems += [Django(use_caching=True), Django(use_caching=False)]
    if "blinker" in peers:
        systems.append(Blinker())
    if "psygnal" in peers:
        systems.append(Psygnal())
    return systems
