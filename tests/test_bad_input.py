"""Bad input to every public function: a clear error, raised at once, and nothing changed.

Each case calls one public function or method the wrong way and states the exception it must
raise and what its message must say: the thing that is wrong (the signal, the receiver, the
argument) and, where there is one, the fix. Every case runs against a signal with
connections of each kind, which must be exactly as they were afterwards, with consistent
bookkeeping.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import tocsin
from tocsin import Argument, Signal, _catalogue_views, catalogue, emit, on_commit, receiver, testing


def on_anything(**kwargs: Any) -> str:
    return "anything"


def on_auth(**kwargs: Any) -> str:
    return "auth"


class Strong:
    def __call__(self, **kwargs: Any) -> str:
        return "strong"


class NoWeakrefs:
    __slots__ = ()

    def __call__(self, **kwargs: Any) -> None: ...


class BrokenRepr:
    def __repr__(self) -> str:
        raise ZeroDivisionError("repr failed")


class Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Unhashable()"


def positional_only(a: int) -> None: ...


@pytest.fixture
def signal() -> Iterator[Signal]:
    """A signal with connections of every kind: any sender, one sender, a dispatch_uid, a
    strong one; strict, declaring ``order`` and an optional ``note``."""
    made = Signal(name="orders", arguments=[Argument("order"), Argument("note", optional=True)])
    made.strict = True
    made.connect(on_anything)
    made.connect(on_auth, sender="auth", dispatch_uid="orders.on_auth")
    made.connect(Strong(), weak=False)
    made.send("auth", order=1)
    yield made
    made.strict = None


def _asend(target: Signal, **named: Any) -> Any:
    return asyncio.run(target.asend(None, **named))


def _asend_robust(target: Signal, **named: Any) -> Any:
    return asyncio.run(target.asend_robust(None, **named))


Case = tuple[str, Callable[[Signal], object], type[BaseException], list[str]]

CASES: list[Case] = [
    # -- Signal() ------------------------------------------------------------------------
    ("Signal(name=3)", lambda s: Signal(name=3), TypeError, ["name=", "must be a str", "3"]),  # type: ignore[arg-type]
    (
        "Signal(strict=1)",
        lambda s: Signal(name="x", strict=1),  # type: ignore[arg-type]
        TypeError,
        ["Signal 'x'", "strict=", "True, False or None"],
    ),
    (
        "Signal(arguments=3)",
        lambda s: Signal(name="x", arguments=3),  # type: ignore[arg-type]
        TypeError,
        ["arguments= of Signal 'x'", "list of names or Argument objects"],
    ),
    (
        "Signal(arguments='order')",
        lambda s: Signal(name="x", arguments="order"),
        TypeError,
        ["arguments= of Signal 'x'", "list of names", "'order'"],
    ),
    (
        "Signal(arguments=[3])",
        lambda s: Signal(name="x", arguments=[3]),  # type: ignore[list-item]
        TypeError,
        ["Signal 'x' declares 3", "a name \\(str\\) or an Argument"],
    ),
    (
        "Signal(arguments=[Argument(3)])",
        lambda s: Signal(name="x", arguments=[Argument(3)]),  # type: ignore[arg-type]
        TypeError,
        ["Signal 'x'", "argument named 3", "Python identifier"],
    ),
    (
        "Signal(arguments=['not a name'])",
        lambda s: Signal(name="x", arguments=["not a name"]),
        TypeError,
        ["Signal 'x'", "'not a name'", "Python identifier"],
    ),
    (
        "Signal(arguments=['sender'])",
        lambda s: Signal(name="x", arguments=["sender"]),
        ValueError,
        ["Signal 'x' declares 'sender'", "every receiver already gets", "only the other"],
    ),
    (
        "Signal(arguments=['a', 'a'])",
        lambda s: Signal(name="x", arguments=["a", "a"]),
        ValueError,
        ["Signal 'x' declares the argument 'a' twice"],
    ),
    (
        "Signal(arguments=..., providing_args=...)",
        lambda s: Signal(name="x", arguments=["a"], providing_args=["a"]),
        TypeError,
        ["Signal 'x'", "arguments= or providing_args=, not both"],
    ),
    # -- connect -----------------------------------------------------------------------------
    (
        "connect(3)",
        lambda s: s.connect(3),  # type: ignore[type-var]
        TypeError,
        ["must be callable", r"<Signal 'orders'>\.connect\(\) got 3 \(int\)"],
    ),
    (
        "connect(non-callable whose repr fails)",
        lambda s: s.connect(BrokenRepr()),  # type: ignore[type-var]
        TypeError,
        ["must be callable", "<Signal 'orders'>", "BrokenRepr"],
    ),
    (
        "connect(no **kwargs)",
        lambda s: s.connect(positional_only),
        ValueError,
        ["must accept keyword arguments", "positional_only", "<Signal 'orders'>"],
    ),
    (
        "connect(not weakly referenceable)",
        lambda s: s.connect(NoWeakrefs()),
        TypeError,
        ["NoWeakrefs", "cannot be weakly referenced", "<Signal 'orders'>", "weak=False"],
    ),
    (
        "connect(dispatch_uid=[...])",
        lambda s: s.connect(on_anything, dispatch_uid=["a"]),  # type: ignore[arg-type]
        TypeError,
        [r"<Signal 'orders'>\.connect\(\)", "dispatch_uid", "hashable", r"\['a'\]", "Use a str"],
    ),
    (
        "connect(dispatch_uid=unhashable object)",
        lambda s: s.connect(on_anything, dispatch_uid=Unhashable()),
        TypeError,
        ["dispatch_uid", "Unhashable\\(\\)", "hashable"],
    ),
    # -- disconnect --------------------------------------------------------------------------
    (
        "disconnect()",
        lambda s: s.disconnect(),
        TypeError,
        [r"<Signal 'orders'>\.disconnect\(\) needs a receiver or a dispatch_uid"],
    ),
    (
        "disconnect(dispatch_uid=[...])",
        lambda s: s.disconnect(dispatch_uid=["orders.on_auth"]),  # type: ignore[arg-type]
        TypeError,
        [r"<Signal 'orders'>\.disconnect\(\)", "dispatch_uid", "hashable", "Use a str"],
    ),
    (
        "disconnect(dispatch_uid={...}, sender=...)",
        lambda s: s.disconnect(sender="auth", dispatch_uid={"a": 1}),  # type: ignore[arg-type]
        TypeError,
        [r"<Signal 'orders'>\.disconnect\(\)", "dispatch_uid", "hashable"],
    ),
    # -- sending -------------------------------------------------------------------------------
    *[
        (
            f"{method}(signal=...)",
            functools.partial(
                lambda s, send: send(s, order=1, signal="oops"),
                send=send,
            ),
            TypeError,
            ["<Signal 'orders'>", "argument named 'signal'", "pick another name"],
        )
        for method, send in [
            ("send", lambda s, **n: s.send(None, **n)),
            ("send_robust", lambda s, **n: s.send_robust(None, **n)),
            ("asend", _asend),
            ("asend_robust", _asend_robust),
        ]
    ],
    *[
        (
            f"strict {method}(ordr=...)",
            functools.partial(lambda s, send: send(s, ordr=1), send=send),
            TypeError,
            ["<Signal 'orders'>", "unexpected argument 'ordr'", "did you mean 'order'"],
        )
        for method, send in [
            ("send", lambda s, **n: s.send(None, **n)),
            ("send_robust", lambda s, **n: s.send_robust(None, **n)),
            ("asend", _asend),
            ("asend_robust", _asend_robust),
        ]
    ],
    (
        "strict send() missing a required argument",
        lambda s: s.send("auth", note="n"),
        TypeError,
        [r"<Signal 'orders'>\.send\(\)", "missing the required argument 'order'"],
    ),
    (
        "check_arguments(unknown)",
        lambda s: s.check_arguments({"order": 1, "nte": 2}, "send_robust"),
        TypeError,
        [r"<Signal 'orders'>\.send_robust\(\)", "'nte'", "did you mean 'note'", "order, note"],
    ),
    (
        "signal.strict = 'yes'",
        lambda s: setattr(s, "strict", "yes"),
        TypeError,
        [r"<Signal 'orders'>\.strict", "True, False or None"],
    ),
    # -- receiver() and the other entry points ---------------------------------------------
    (
        "receiver(3)",
        lambda s: receiver(3),
        TypeError,
        [r"receiver\(\) takes a Signal", "connect\\(\\) method", "got 3 \\(int\\)"],
    ),
    (
        "receiver([signal, 'x'])",
        lambda s: receiver([s, "x"]),
        TypeError,
        [r"receiver\(\) takes a Signal", "got 'x' \\(str\\)"],
    ),
    (
        "@receiver(signal) on a non-callable",
        lambda s: receiver(s)(3),
        TypeError,
        ["must be callable", "<Signal 'orders'>"],
    ),
    (
        "set_sync_to_async(3)",
        lambda s: tocsin.set_sync_to_async(3),  # type: ignore[arg-type]
        TypeError,
        [r"set_sync_to_async\(\) takes a callable or None", "got 3"],
    ),
    (
        "set_async_to_sync(3)",
        lambda s: tocsin.set_async_to_sync(3),  # type: ignore[arg-type]
        TypeError,
        [r"set_async_to_sync\(\) takes a callable or None", "got 3"],
    ),
    (
        "connected_to(3)",
        lambda s: s.connected_to(3).__enter__(),  # type: ignore[type-var]
        TypeError,
        ["must be callable", "<Signal 'orders'>"],
    ),
    # -- tocsin.catalogue ------------------------------------------------------------------------
    (
        "the catalogue's describe('nope')",
        lambda s: _catalogue_views.describe("nope"),
        ValueError,
        ["unknown signal group 'nope'", "the groups are: auth"],
    ),
    (
        "catalogue.group_of(signal)",
        lambda s: catalogue.group_of(s),
        ValueError,
        ["<Signal 'orders'> is not a tocsin.catalogue signal", "SIGNALS"],
    ),
    # -- tocsin.testing --------------------------------------------------------------------------
    (
        "testing.muted(3)",
        lambda s: testing.muted(3),  # type: ignore[arg-type]
        TypeError,
        [r"muted\(\) takes signals", "argument 1 is 3"],
    ),
    (
        "testing.capture([signal])",
        lambda s: testing.capture([s]),  # type: ignore[arg-type]
        TypeError,
        [r"capture\(\) takes signals", "one by one"],
    ),
    (
        "testing.isolated('orders')",
        lambda s: testing.isolated("orders"),  # type: ignore[arg-type]
        TypeError,
        [r"isolated\(\) takes signals", "'orders' \\(str\\)"],
    ),
    (
        "testing.strict(signal)",
        lambda s: testing.strict(s),  # type: ignore[arg-type]
        TypeError,
        [r"strict\(\) takes True or False first", r"strict\(True, signal\)"],
    ),
    (
        "testing.muted()(3)",
        lambda s: testing.muted(s)(3),
        TypeError,
        [r"muted\(\) decorates a function", "got 3"],
    ),
    # -- discovery, on_commit ----------------------------------------------------------------
    (
        "autodiscover(3)",
        lambda s: tocsin.autodiscover(3),  # type: ignore[arg-type]
        TypeError,
        [r"autodiscover\(\) takes package names or modules", "got 3 \\(int\\)"],
    ),
    (
        "autodiscover('no_such_package')",
        lambda s: tocsin.autodiscover("tocsin_no_such_package"),
        ModuleNotFoundError,
        ["there is no package named 'tocsin_no_such_package'"],
    ),
    (
        "autodiscover(module='a.b')",
        lambda s: tocsin.autodiscover("tocsin", module="a.b"),
        ValueError,
        ["module must be the name of a submodule", "'a.b'"],
    ),
    (
        "autodiscover(a module)",
        lambda s: tocsin.autodiscover("tocsin.dispatcher"),
        ValueError,
        ["'tocsin.dispatcher' is a module, not a package", "pass the package"],
    ),
    (
        "on_commit().send(3, ...)",
        lambda s: on_commit().send(3, None),  # type: ignore[arg-type]
        TypeError,
        [r"Batch\.send\(\) takes the signal to send first", "got 3"],
    ),
    (
        "on_commit().send outside its block",
        lambda s: on_commit().send(s, None, order=1),
        RuntimeError,
        ["cannot collect <Signal 'orders'>", "only inside its with block"],
    ),
    # -- tocsin.emit -----------------------------------------------------------------------------
    (
        "emit.changing_m2m(change='nope')",
        lambda s: emit.changing_m2m(object(), model=object, change="nope", pk_set=[1]),
        ValueError,
        ["'nope'"],
    ),
]


@pytest.mark.parametrize(
    ("action", "error", "patterns"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_clearly_and_changes_nothing(
    signal: Signal,
    action: Callable[[Signal], object],
    error: type[BaseException],
    patterns: list[str],
) -> None:
    before = signal.connections()
    strict_before = signal.strict_choice
    with pytest.raises(error) as raised:
        action(signal)
    for pattern in patterns:
        assert raised.match(pattern), f"{pattern!r} not in {raised.value}"
    # Shown alone: no "During handling of the above exception" with a lesser error.
    # (A missing package keeps the import system's own error as its cause.)
    assert raised.value.__cause__ is None or error is ModuleNotFoundError
    assert signal.connections() == before
    assert signal.strict_choice is strict_before
    signal._ledger.check()
    assert signal.send("auth", order=2) == [
        (on_anything, "anything"),
        (on_auth, "auth"),
        (before[2].receiver, "strong"),
    ]
