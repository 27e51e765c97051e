"""Model-based testing: random sequences of operations on one signal, each checked against a
small reference model of tocsin's documented semantics.

The model (``Model`` below) is written from the documentation, not from the code: a list of
connections in the order they were made, each keyed by its receiver (or dispatch_uid) and its
sender; a connect under a key already taken does nothing; a send calls, in connection order,
the sync receivers for any sender or for the sender sent (matched by value for exact ``str``,
``bytes``, ``int`` and ``bool``, by identity otherwise), then the async ones; weak receivers
and weakly referenceable senders take their connections with them when they die, and a
weakly connected function or partial that dies before any send since it was connected is
reported by a ReceiverCollectedWarning; ``muted()`` makes sends call nobody; strict mode
checks the names of every send against the declared arguments.

After every operation the real signal must agree with the model on what the operation
returned or raised, which receivers ran and in which order, what warnings were issued and what
``connections()`` lists, and ``signal._ledger.check()`` must pass. Each sequence is seeded;
a failure names the seed and prints the operations so far. ``TOCSIN_MODEL_SEED=N`` reruns
from seed N; ``TOCSIN_STRESS=long`` runs many more sequences.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import gc
import logging
import os
import random
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tocsin import Argument, Connection, ReceiverCollectedWarning, Signal, set_strict

LONG = os.environ.get("TOCSIN_STRESS", "").strip().lower() == "long"
SEQUENCES = 2_000 if LONG else 150
STEPS = 60

BY_VALUE = (str, bytes, int, bool)
DECLARED = (Argument("x"), Argument("y", optional=True))


class Colour(enum.IntEnum):
    """Its members are ints by value, but senders by identity (only exact types go by value)."""

    RED = 1


class Slotted:
    """A sender that cannot be weakly referenced: a connection for it keeps it alive."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slotted({self.name})"


class Sender:
    """A sender matched by identity, that dies when the test lets go of it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Sender({self.name})"


FIXED_SENDERS: tuple[object, ...] = ("a", "b", "", 1, 0, True, False, b"a", 1.5, Colour.RED)
UIDS: tuple[object, ...] = ("u", "v", b"u", 1, True, 1.0, (1, 2), 0, "")  # 0 and "" mean none
NAMES: tuple[dict[str, Any], ...] = (
    {},
    {"x": 1},
    {"x": 2, "y": 3},
    {"y": 3, "x": 2},
    {"y": 4},
    {"z": 5},
    {"x": 6, "µ": 7},
    {"x": 8, "ﬁle": 9},
    {"x": 10, "class": 11},
    {"x": 12, "sender_": 13},
)

# -- receivers ---------------------------------------------------------------------------------

Log = list[str]


def respond(name: str, log: Log, kwargs: dict[str, Any]) -> tuple[str, object, object, dict]:
    log.append(name)
    named = {k: v for k, v in kwargs.items() if k not in ("signal", "sender")}
    return (name, kwargs["signal"], kwargs["sender"], named)


class ObjectReceiver:
    def __init__(self, name: str, log: Log, cyclic: bool) -> None:
        self.name = name
        self.log = log
        if cyclic:
            self.cycle = self  # dies only when the collector runs

    def __call__(self, **kwargs: Any) -> Any:
        return respond(self.name, self.log, kwargs)

    def on_signal(self, **kwargs: Any) -> Any:
        return respond(self.name, self.log, kwargs)


class FailingReceiver(ObjectReceiver):
    def __call__(self, **kwargs: Any) -> Any:
        respond(self.name, self.log, kwargs)
        raise ValueError(self.name)


class AsyncReceiver(ObjectReceiver):
    async def __call__(self, **kwargs: Any) -> Any:  # type: ignore[override]
        return respond(self.name, self.log, kwargs)


def partial_target(name: str, log: Log, **kwargs: Any) -> Any:
    return respond(name, log, kwargs)


def make_function(name: str, log: Log) -> Callable[..., Any]:
    def function(**kwargs: Any) -> Any:
        return respond(name, log, kwargs)

    return function


def make_async_function(name: str, log: Log) -> Callable[..., Any]:
    async def function(**kwargs: Any) -> Any:
        return respond(name, log, kwargs)

    return function


@dataclass(frozen=True)
class Spec:
    """What the model knows of a receiver the test made (nothing that keeps it alive)."""

    name: str
    kind: str
    identity: object  # what tocsin tells receivers apart by, while they live
    is_async: bool
    watched: bool  # a plain function or partial: its death before a send is warned about
    fails: bool
    cyclic: bool  # dies only when the collector runs


@dataclass
class Made:
    """A receiver the test made and holds: what to connect, and what keeps it alive."""

    spec: Spec
    target: Callable[..., Any]  # what is passed to connect()
    owner: object  # the object itself, or a bound method's instance
    pinned: bool = False  # connected strongly once: the test never lets go of it

    @property
    def name(self) -> str:
        return self.spec.name


def _made(name: str, kind: str, target: Any, owner: Any, cyclic: bool = False) -> Made:
    identity = ("method", id(owner)) if kind == "method" else id(target)
    spec = Spec(
        name,
        kind,
        identity,
        is_async=kind.startswith("async"),
        watched=kind in ("function", "partial", "async function"),
        fails=kind == "failing",
        cyclic=cyclic,
    )
    return Made(spec, target, owner)


def make_receiver(rnd: random.Random, name: str, log: Log) -> Made:
    kind = rnd.choices(
        ["object", "method", "function", "partial", "failing", "async object", "async function"],
        [5, 3, 3, 2, 1, 1, 1],
    )[0]
    cyclic = rnd.random() < 0.3
    if kind == "object":
        target: Any = ObjectReceiver(name, log, cyclic)
        return _made(name, kind, target, target, cyclic)
    if kind == "method":
        owner = ObjectReceiver(name, log, cyclic)
        return _made(name, kind, owner.on_signal, owner, cyclic)
    if kind == "failing":
        target = FailingReceiver(name, log, cyclic)
        return _made(name, kind, target, target, cyclic)
    if kind == "async object":
        target = AsyncReceiver(name, log, cyclic)
        return _made(name, kind, target, target, cyclic)
    if kind == "function":
        target = make_function(name, log)
    elif kind == "partial":
        target = functools.partial(partial_target, name, log)
    else:
        target = make_async_function(name, log)
    return _made(name, kind, target, target)


# -- the model ----------------------------------------------------------------------------------


def same_sender(first: object, second: object) -> bool:
    if type(first) in BY_VALUE:
        return type(first) is type(second) and first == second
    return first is second


def same_uid(first: object, second: object) -> bool:
    if isinstance(first, str | bytes) or isinstance(second, str | bytes):
        return type(first) is type(second) and first == second
    return bool(first == second)


@dataclass
class Entry:
    """One connection as the model sees it."""

    spec: Spec
    receiver: Callable[[], Any]  # returns the receiver (as connections() shows it) or None
    anyone: bool  # connected for any sender
    sender: Callable[[], object]  # returns the sender (None once a weakly held one died)
    sender_alive: Callable[[], bool]
    uid: object  # the dispatch_uid, or None
    weak: bool
    sent: bool = False  # a send happened since it was made


@dataclass
class Model:
    entries: list[Entry] = field(default_factory=list)
    muted: int = 0
    strict_global: bool = False
    strict_choice: bool | None = None

    @property
    def strict(self) -> bool:
        return self.strict_global if self.strict_choice is None else self.strict_choice

    def matches(self, entry: Entry, sender: object) -> bool:
        """Whether a send from ``sender`` reaches ``entry`` (None: any sender)."""
        if entry.anyone:
            return True
        return entry.sender_alive() and sender is not None and same_sender(entry.sender(), sender)

    def find(self, spec: Spec | None, sender: object, uid: object) -> Entry | None:
        """The connection filed under (``uid`` or ``spec``'s receiver, ``sender``)."""
        for entry in self.entries:
            if uid is not None:
                if entry.uid is None or not same_uid(entry.uid, uid):
                    continue
            elif spec is None or entry.uid is not None or entry.spec.identity != spec.identity:
                continue
            if sender is None and entry.anyone:
                return entry
            if sender is not None and not entry.anyone and self.matches(entry, sender):
                return entry
        return None

    def connect(self, made: Made, sender: object, weak: bool, uid: object) -> bool:
        """Whether the connect makes a connection."""
        if self.find(made.spec, sender, uid) is not None:
            return False
        receiver: Callable[[], Any]
        if weak:
            reference = weakref.ref(made.owner)
            if made.spec.kind == "method":
                func = made.target.__func__  # type: ignore[attr-defined]

                def receiver() -> Any:
                    owner = reference()
                    return None if owner is None else func.__get__(owner)

            else:
                receiver = reference
        else:
            target = made.target

            def receiver() -> Any:
                return target

        try:
            sender_weak = weakref.ref(sender) if type(sender) not in BY_VALUE else None
        except TypeError:  # a sender tocsin must hold strongly, as the model does
            sender_weak = None
        if sender_weak is None:
            held = sender
            self.entries.append(
                Entry(made.spec, receiver, sender is None, lambda: held, lambda: True, uid, weak)
            )
        else:
            alive = sender_weak
            self.entries.append(
                Entry(
                    made.spec,
                    receiver,
                    False,
                    alive,
                    lambda: alive() is not None,
                    uid,
                    weak,
                )
            )
        return True

    def disconnect(self, spec: Spec | None, sender: object, uid: object) -> bool:
        entry = self.find(spec, sender, uid)
        if entry is None:
            return False
        self.entries.remove(entry)
        return True

    def collect(self) -> int:
        """Forget connections whose receiver or sender died; return how many warnings that
        makes (watched weak receivers that died unsent)."""
        warned = 0
        for entry in list(self.entries):
            if not entry.sender_alive():
                self.entries.remove(entry)
            elif entry.receiver() is None:
                self.entries.remove(entry)
                if entry.spec.watched and entry.weak and not entry.sent:
                    warned += 1
        return warned

    def route(self, sender: object) -> list[Entry]:
        """What a send from ``sender`` calls: sync receivers, then async, in connection order."""
        return self.in_call_order([e for e in self.entries if self.matches(e, sender)])

    @staticmethod
    def in_call_order(entries: list[Entry]) -> list[Entry]:
        return [e for e in entries if not e.spec.is_async] + [e for e in entries if e.spec.is_async]

    def connections(self) -> list[Connection]:
        return [
            Connection(
                e.receiver(), None if e.anyone else e.sender(), e.uid, e.weak, e.spec.is_async
            )
            for e in self.in_call_order(self.entries)
        ]

    def strict_error(self, named: dict[str, Any]) -> str | None:
        """The name a strict send would complain about, or None if it fits."""
        if not self.strict:
            return None
        declared = {argument.name for argument in DECLARED}
        for name in named:
            if name not in declared:
                return name
        for argument in DECLARED:
            if not argument.optional and argument.name not in named:
                return argument.name
        return None


# -- the driver ---------------------------------------------------------------------------------


class Failure(AssertionError):
    pass


class Sequence:
    """One random sequence of operations on a fresh signal, checked step by step."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rnd = random.Random(seed)
        self.signal = Signal(name="model", arguments=DECLARED)
        self.model = Model(strict_global=False)
        self.log: Log = []
        self.made: list[Made] = []  # receivers the test still holds
        self.senders: list[Sender | Slotted] = []
        self.counter = 0
        self.mutes: list[Any] = []
        self.steps: list[str] = []

    # -- helpers -----------------------------------------------------------------------------

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def pick_sender(self, allow_none: bool = True) -> object:
        rnd = self.rnd
        if allow_none and rnd.random() < 0.35:
            return None
        if self.senders and rnd.random() < 0.4:
            return rnd.choice(self.senders)
        return rnd.choice(FIXED_SENDERS)

    def pick_receiver(self) -> Made:
        if self.made and self.rnd.random() < 0.7:
            return self.rnd.choice(self.made)
        made = make_receiver(self.rnd, self.name("r"), self.log)
        self.made.append(made)
        return made

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            raise Failure(what)

    # -- operations --------------------------------------------------------------------------

    def op_connect(self) -> None:
        rnd = self.rnd
        made = self.pick_receiver()
        sender = self.pick_sender()
        weak = rnd.random() < 0.8
        uid = rnd.choice(UIDS) if rnd.random() < 0.3 else None
        self.steps.append(
            f"connect({made.name} [{made.spec.kind}], sender={sender!r}, weak={weak}, "
            f"dispatch_uid={uid!r})"
        )
        returned = self.signal.connect(made.target, sender=sender, weak=weak, dispatch_uid=uid)
        self.expect(returned is made.target, "connect() did not return the receiver")
        self.model.connect(made, sender, weak, uid or None)
        if not weak:
            made.pinned = True

    def op_disconnect(self) -> None:
        rnd = self.rnd
        entries = self.model.entries
        target: Any
        if entries and rnd.random() < 0.7:
            entry = rnd.choice(entries)
            sender = None if entry.anyone else entry.sender()
            uid = entry.uid
            # By uid, the receiver passed does not matter; by receiver, it is the one connected.
            target = entry.receiver() if uid is None or rnd.random() < 0.3 else None
            label = entry.spec.name
        else:
            made = self.pick_receiver()
            target, label = made.target, made.name
            sender = self.pick_sender()
            uid = rnd.choice(UIDS) if rnd.random() < 0.3 else None
        if target is None and not uid:
            return
        self.steps.append(f"disconnect({label}, sender={sender!r}, dispatch_uid={uid!r})")
        removed = self.signal.disconnect(target, sender=sender, dispatch_uid=uid)
        spec = None if uid else self.spec_of(target)
        expected = self.model.disconnect(spec, sender, uid or None)
        self.expect(removed is expected, f"disconnect() returned {removed}, expected {expected}")

    def spec_of(self, target: Any) -> Spec:
        for made in self.made:
            if made.target == target:
                return made.spec
        raise AssertionError(f"{target!r} is not a receiver the test holds")

    def op_drop_receiver(self) -> None:
        droppable = [m for m in self.made if not m.pinned]
        if not droppable:
            return
        made = self.rnd.choice(droppable)
        self.steps.append(f"drop receiver {made.name} [{made.spec.kind}]")
        self.made.remove(made)
        del made, droppable
        # Not only for receivers in a cycle: asyncio and robust sends leave cycles behind
        # that may reach a receiver (a finished task, a traceback's frames).
        gc.collect()

    def op_new_sender(self) -> None:
        sender: Sender | Slotted = (
            Slotted(self.name("slotted")) if self.rnd.random() < 0.2 else Sender(self.name("s"))
        )
        self.steps.append(f"new sender {sender!r}")
        self.senders.append(sender)

    def op_drop_sender(self) -> None:
        if not self.senders:
            return
        sender = self.senders.pop(self.rnd.randrange(len(self.senders)))
        self.steps.append(f"drop sender {sender!r}")
        del sender
        gc.collect()

    def op_send(self) -> None:
        rnd = self.rnd
        method = rnd.choices(["send", "send_robust", "asend", "asend_robust"], [10, 6, 1, 1])[0]
        sender = self.pick_sender(allow_none=True)
        named = dict(rnd.choice(NAMES))
        self.steps.append(f"{method}({sender!r}, **{named!r})")
        model = self.model
        for entry in model.entries:
            entry.sent = True
        robust = method.endswith("robust")
        self.log.clear()
        bad_name = model.strict_error(named)
        route = [] if model.muted else model.route(sender)
        called: list[str] = []
        expected: list[tuple[Any, Any]] = []
        failure: str | None = None
        for entry in route:
            receiver = entry.receiver()
            called.append(entry.spec.name)
            if entry.spec.fails:
                if not robust:
                    failure = entry.spec.name
                    break
                expected.append((receiver, ValueError(entry.spec.name)))
            else:
                expected.append((receiver, (entry.spec.name, self.signal, sender, named)))
        try:
            if method.startswith("a"):
                responses = asyncio.run(getattr(self.signal, method)(sender, **named))
            else:
                responses = getattr(self.signal, method)(sender, **named)
        except TypeError as error:
            self.expect(bad_name is not None, f"{method} raised {error!r}")
            self.expect(repr(bad_name) in str(error), f"{error} does not name {bad_name!r}")
            self.expect(self.log == [], f"receivers ran before the strict check: {self.log}")
            return
        except ValueError as error:
            self.expect(failure is not None and error.args == (failure,), f"raised {error!r}")
            self.expect(self.log == called, f"called {self.log}, expected {called}")
            return
        try:
            self.compare(method, sender, named, responses, expected, called, bad_name, failure)
        finally:
            # A robust send's failure holds its traceback, whose frames hold the responses:
            # a cycle that would keep everything the test's frames reference alive until the
            # collector runs, and the model expects receivers to die when let go of.
            for _, response in responses:
                if isinstance(response, BaseException):
                    response.__traceback__ = None

    def compare(
        self,
        method: str,
        sender: object,
        named: dict[str, Any],
        responses: list[tuple[Any, Any]],
        expected: list[tuple[Any, Any]],
        called: list[str],
        bad_name: str | None,
        failure: str | None,
    ) -> None:
        self.expect(bad_name is None, f"{method} accepted {named}, {bad_name!r} is not declared")
        self.expect(failure is None, f"{method} did not raise {failure}'s error")
        self.expect(self.log == called, f"called {self.log}, expected {called}")
        self.expect(len(responses) == len(expected), f"responses {responses} != {expected}")
        for (receiver, response), (want_receiver, want) in zip(responses, expected, strict=True):
            self.expect(receiver == want_receiver, f"response from {receiver}, not {want_receiver}")
            if isinstance(want, ValueError):
                self.expect(
                    type(response) is ValueError and response.args == want.args,
                    f"robust response {response!r}, expected {want!r}",
                )
            else:
                self.expect(response == want, f"response {response!r}, expected {want!r}")
                self.expect(response[2] is sender, "the receiver got another sender object")

    def op_mute(self) -> None:
        if self.mutes and self.rnd.random() < 0.6:
            self.steps.append("end of muted()")
            self.mutes.pop().__exit__(None, None, None)
            self.model.muted -= 1
        else:
            self.steps.append("muted()")
            block = self.signal.muted()
            block.__enter__()
            self.mutes.append(block)
            self.model.muted += 1

    def op_strict(self) -> None:
        if self.rnd.random() < 0.5:
            enabled = self.rnd.random() < 0.5
            self.steps.append(f"set_strict({enabled})")
            set_strict(enabled)
            self.model.strict_global = enabled
        else:
            choice = self.rnd.choice([True, False, None])
            self.steps.append(f"signal.strict = {choice}")
            self.signal.strict = choice
            self.model.strict_choice = choice
        self.expect(self.signal.strict is self.model.strict, "signal.strict disagrees")
        self.expect(self.signal.strict_choice is self.model.strict_choice, "strict_choice")

    def op_inspect(self) -> None:
        sender = self.pick_sender()
        self.steps.append(f"receivers_for({sender!r}), has_listeners({sender!r})")
        expected = [entry.receiver() for entry in self.model.route(sender)]
        self.expect(self.signal.receivers_for(sender) == expected, "receivers_for() disagrees")
        self.expect(self.signal.has_listeners(sender) is bool(expected), "has_listeners()")

    OPERATIONS = (
        ("op_connect", 30),
        ("op_disconnect", 12),
        ("op_drop_receiver", 8),
        ("op_new_sender", 4),
        ("op_drop_sender", 4),
        ("op_send", 30),
        ("op_mute", 3),
        ("op_strict", 3),
        ("op_inspect", 6),
    )

    # -- the sequence ------------------------------------------------------------------------

    def step(self) -> None:
        names = [name for name, _ in self.OPERATIONS]
        weights = [weight for _, weight in self.OPERATIONS]
        operation = getattr(self, self.rnd.choices(names, weights)[0])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            operation()
        warned = self.model.collect()
        collected = [w for w in caught if w.category is ReceiverCollectedWarning]
        others = [w for w in caught if w.category is not ReceiverCollectedWarning]
        self.expect(others == [], f"unexpected warnings: {[str(w.message) for w in others]}")
        self.expect(
            len(collected) == warned,
            f"{len(collected)} ReceiverCollectedWarning, expected {warned}: "
            f"{[str(w.message) for w in collected]}",
        )
        for warning in collected:
            self.expect("before <Signal 'model'> was sent" in str(warning.message), "message")
        self.signal._ledger.check()
        actual = self.signal.connections()
        expected = self.model.connections()
        self.expect(len(actual) == len(expected), f"connections() {actual} != {expected}")
        for got, want in zip(actual, expected, strict=True):
            self.expect(got.receiver == want.receiver, f"connections() {actual} != {expected}")
            self.expect(
                got.sender is None
                if want.sender is None
                else got.sender is not None and same_sender(want.sender, got.sender),
                f"sender of {got}, expected {want}",
            )
            self.expect(
                (got.dispatch_uid is None) == (want.dispatch_uid is None)
                and (want.dispatch_uid is None or same_uid(got.dispatch_uid, want.dispatch_uid)),
                f"dispatch_uid of {got}, expected {want}",
            )
            self.expect((got.weak, got.is_async) == (want.weak, want.is_async), f"{got} != {want}")

    def run(self) -> None:
        previous = set_strict(False)
        try:
            # Each method gets the send compiled for the names of its first send: random ones,
            # now or at some step below (through the class's own method until then).
            for method in ("send", "send_robust"):
                if self.rnd.random() < 0.5:
                    continue
                named = self.rnd.choice(NAMES)
                self.steps.append(f"{method}(None, **{named!r}) with nobody connected")
                self.expect(getattr(self.signal, method)(None, **named) == [], "a first send")
            for _ in range(STEPS):
                self.step()
            while self.mutes:
                self.mutes.pop().__exit__(None, None, None)
            self.model.muted = 0
            for connection in self.signal.connections():
                removed = self.signal.disconnect(
                    connection.receiver, connection.sender, connection.dispatch_uid
                )
                self.expect(removed, f"could not disconnect {connection}")
            self.expect(self.signal.connections() == [], "connections left after disconnecting all")
            self.signal._ledger.check()
        finally:
            set_strict(previous)
            while self.mutes:
                self.mutes.pop().__exit__(None, None, None)


@pytest.fixture
def quiet_and_quick() -> Iterator[None]:
    """send_robust logs each failure with its traceback; records kept by the test's log
    capture would keep the failing receivers alive, and the model expects them to die. And
    the objects of the whole test session are frozen out of the collector's way, so that
    collecting a receiver costs only the objects this test made."""
    logger = logging.getLogger("tocsin")
    previous = logger.disabled
    logger.disabled = True
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        logger.disabled = previous


def test_random_operation_sequences_follow_the_model(quiet_and_quick: None) -> None:
    base = int(os.environ.get("TOCSIN_MODEL_SEED") or random.randrange(2**32))
    for offset in range(SEQUENCES):
        sequence = Sequence(base + offset)
        try:
            sequence.run()
        except Exception as error:
            steps = "\n".join(f"  {n:3} {step}" for n, step in enumerate(sequence.steps, 1))
            raise AssertionError(
                f"model sequence with seed {sequence.seed} failed at step "
                f"{len(sequence.steps)}: {error}\n"
                f"(rerun with TOCSIN_MODEL_SEED={sequence.seed})\n{steps}"
            ) from error
