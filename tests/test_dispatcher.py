"""Signal and receiver: calling convention, deduplication, sender matching, validation,
robust sending, re-entrancy and caching."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import tocsin
from tocsin import Connection, Signal, _sendcode, receiver


def make_recorder(log: list[Any], name: str) -> Any:
    def record(**kwargs: Any) -> str:
        log.append((name, kwargs))
        return name

    return record


# Module-level receivers outlive every test, so tests that never send do not trip
# ReceiverCollectedWarning (tested on its own in test_weak.py).
def r_a(**kwargs: Any) -> str:
    return "a"


def r_b(**kwargs: Any) -> str:
    return "b"


def r_c(**kwargs: Any) -> str:
    return "c"


# -- the package ---------------------------------------------------------------------------


def test_version_is_exposed() -> None:
    assert tocsin.__version__ == "0.1.0"


def test_public_names_are_exported() -> None:
    for name in tocsin.__all__:
        assert hasattr(tocsin, name)


# -- 1. calling convention and order -------------------------------------------------------


def test_receivers_get_signal_sender_and_named_arguments() -> None:
    signal = Signal(name="saved")
    calls: list[Any] = []
    record = make_recorder(calls, "a")
    signal.connect(record)
    signal.send("the sender", instance=1, created=True)
    assert calls == [
        ("a", {"signal": signal, "sender": "the sender", "instance": 1, "created": True})
    ]


def test_send_returns_pairs_in_connection_order() -> None:
    signal = Signal()
    calls: list[Any] = []
    receivers = [make_recorder(calls, name) for name in "abc"]
    for r in receivers:
        signal.connect(r)
    assert signal.send(None) == [(receivers[0], "a"), (receivers[1], "b"), (receivers[2], "c")]
    assert [name for name, _ in calls] == ["a", "b", "c"]


def test_send_with_sender_as_keyword() -> None:
    signal = Signal()
    seen = []
    signal.connect(lambda sender, **kw: seen.append(sender), weak=False)
    signal.send(sender="kw")
    assert seen == ["kw"]


def test_send_without_receivers_returns_empty_list() -> None:
    assert Signal().send(None, x=1) == []
    assert Signal().send_robust(None, x=1) == []


def test_exception_in_send_propagates_and_stops_the_loop() -> None:
    signal = Signal()
    calls: list[Any] = []

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("boom")

    first, last = make_recorder(calls, "first"), make_recorder(calls, "last")
    signal.connect(first)
    signal.connect(boom)
    signal.connect(last)
    with pytest.raises(RuntimeError, match="boom"):
        signal.send(None)
    assert [name for name, _ in calls] == ["first"]


def test_connect_returns_the_receiver_so_it_works_as_decorator() -> None:
    signal = Signal()

    @signal.connect
    def handler(**kwargs: Any) -> int:
        return 1

    assert callable(handler)
    assert signal.send(None) == [(handler, 1)]


def test_receiver_decorator_connects_to_one_or_many_signals() -> None:
    one, two = Signal(), Signal()
    calls: list[Any] = []

    @receiver(one)
    def single(**kwargs: Any) -> None:
        calls.append("single")

    @receiver([one, two], sender="x")
    def many(**kwargs: Any) -> None:
        calls.append("many")

    @receiver((two,), dispatch_uid="uid")
    def from_tuple(**kwargs: Any) -> None:
        calls.append("tuple")

    one.send("x")
    two.send("x")
    assert calls == ["single", "many", "many", "tuple"]
    assert single.__name__ == "single"  # returned unchanged


def test_receiver_decorator_rejects_non_signals_before_connecting() -> None:
    signal = Signal()
    with pytest.raises(TypeError, match="receiver\\(\\) takes a Signal"):
        receiver([signal, "not a signal"])  # type: ignore[list-item]
    assert not signal.has_listeners()


def test_repr_shows_the_name() -> None:
    assert repr(Signal(name="post_save")) == "<Signal 'post_save'>"
    assert repr(Signal()).startswith("<Signal at 0x")


def test_doc_becomes_the_docstring() -> None:
    signal = Signal(name="s", doc="Sent when something happens.")
    assert signal.__doc__ == "Sent when something happens."
    assert signal.doc == "Sent when something happens."


# -- 2. connections: dedup, senders, dispatch_uid ------------------------------------------


def test_connecting_the_same_pair_twice_is_one_connection() -> None:
    signal = Signal()
    calls: list[Any] = []
    record = make_recorder(calls, "a")
    signal.connect(record)
    signal.connect(record)
    signal.connect(record, weak=False)  # first one wins
    assert len(signal.send(None)) == 1
    assert signal.connections()[0].weak is True


def test_bound_method_is_identified_by_instance_and_function() -> None:
    class Handler:
        def on(self, **kwargs: Any) -> int:
            return id(self)

    signal = Signal()
    a, b = Handler(), Handler()
    signal.connect(a.on)
    signal.connect(a.on)  # a new bound-method object each time, same receiver
    signal.connect(b.on)
    assert [response for _, response in signal.send(None)] == [id(a), id(b)]
    assert signal.disconnect(a.on) is True
    assert [response for _, response in signal.send(None)] == [id(b)]


def test_same_receiver_for_two_senders_is_two_connections() -> None:
    signal = Signal()
    calls: list[Any] = []
    record = make_recorder(calls, "a")
    signal.connect(record, sender="x")
    signal.connect(record, sender="y")
    assert len(signal.connections()) == 2
    signal.send("x")
    signal.send("y")
    signal.send("z")
    assert [kw["sender"] for _, kw in calls] == ["x", "y"]


def test_receiver_for_any_sender_and_for_x_is_called_twice_on_send_x() -> None:
    signal = Signal()
    calls: list[Any] = []
    record = make_recorder(calls, "a")
    signal.connect(record)
    signal.connect(record, sender="x")
    assert len(signal.send("x")) == 2
    assert len(signal.send("y")) == 1


def test_dispatch_uid_replaces_receiver_identity() -> None:
    signal = Signal()
    calls: list[Any] = []
    first, second = make_recorder(calls, "first"), make_recorder(calls, "second")
    signal.connect(first, dispatch_uid="only-once")
    signal.connect(second, dispatch_uid="only-once")  # ignored: same uid, same sender
    signal.send(None)
    assert [name for name, _ in calls] == ["first"]
    assert signal.connections()[0].dispatch_uid == "only-once"


def test_dispatch_uid_is_per_sender() -> None:
    signal = Signal()
    signal.connect(r_a, sender="x", dispatch_uid="uid")
    signal.connect(r_b, sender="y", dispatch_uid="uid")
    assert len(signal.connections()) == 2


def test_disconnect_by_uid_alone() -> None:
    signal = Signal()
    record = make_recorder([], "a")
    signal.connect(record, dispatch_uid="uid")
    assert signal.disconnect(dispatch_uid="uid") is True
    assert signal.disconnect(dispatch_uid="uid") is False
    assert not signal.has_listeners()


def test_falsy_dispatch_uid_is_ignored() -> None:
    signal = Signal()
    record = make_recorder([], "a")
    signal.connect(record, dispatch_uid="")
    assert signal.connections()[0].dispatch_uid is None
    assert signal.disconnect(record) is True


def test_dispatch_uid_never_collides_with_a_receiver_id() -> None:
    signal = Signal()
    signal.connect(r_a)
    signal.connect(r_b, dispatch_uid=id(r_a))
    assert len(signal.connections()) == 2


def test_disconnect_reports_whether_something_was_removed() -> None:
    signal = Signal()
    record = make_recorder([], "a")
    assert signal.disconnect(record) is False
    signal.connect(record, sender="x")
    assert signal.disconnect(record) is False  # wrong sender
    assert signal.disconnect(record, sender="x") is True
    assert signal.connections() == []


def test_disconnect_without_receiver_or_uid_is_an_error() -> None:
    with pytest.raises(TypeError, match="needs a receiver or a dispatch_uid"):
        Signal(name="s").disconnect()


def test_connections_expose_receiver_sender_uid_and_weak() -> None:
    signal = Signal()
    a, b = r_a, r_b

    class Sender:
        pass

    signal.connect(a)
    signal.connect(b, sender=Sender, weak=False, dispatch_uid="b")
    assert signal.connections() == [
        Connection(a, None, None, True, False),
        Connection(b, Sender, "b", False, False),
    ]


def test_receivers_for_lists_what_send_would_call_in_order() -> None:
    signal = Signal()
    a, b, c = r_a, r_b, r_c
    signal.connect(a, sender="x")
    signal.connect(b)
    signal.connect(c, sender="y")
    assert signal.receivers_for("x") == [a, b]
    assert signal.receivers_for("y") == [b, c]
    assert signal.receivers_for(None) == [b]


def test_has_listeners_follows_what_send_would_do() -> None:
    signal = Signal()
    record = r_a
    assert signal.has_listeners() is False
    signal.connect(record, sender="x")
    assert signal.has_listeners("x") is True
    assert signal.has_listeners("y") is False
    assert signal.has_listeners() is False
    signal.connect(record)
    assert signal.has_listeners("y") is True


# -- 3. sender matching --------------------------------------------------------------------


def test_string_senders_match_by_value() -> None:
    signal = Signal()
    record = make_recorder([], "a")
    signal.connect(record, sender="auth")
    built = "".join(["au", "th"])
    assert built is not "auth"  # noqa: F632 - the point of the test
    assert len(signal.send(built)) == 1


@pytest.mark.parametrize(
    ("connected", "sent", "matches"),
    [
        (b"key", bytes([107, 101, 121]), True),
        (10**30, int("1" + "0" * 30), True),
        (True, True, True),
        (1, True, False),  # equal values of different types stay apart
        (True, 1, False),
        ("1", b"1", False),
        (1, 1.0, False),
    ],
)
def test_value_senders_match_equal_values_of_the_same_type(
    connected: Any, sent: Any, matches: bool
) -> None:
    signal = Signal()
    signal.connect(make_recorder([], "a"), sender=connected, weak=False)
    assert (len(signal.send(sent)) == 1) is matches


def test_other_senders_match_by_identity_not_equality() -> None:
    class Equal:
        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return 0

    signal = Signal()
    a, b = Equal(), Equal()
    signal.connect(make_recorder([], "r"), sender=a, weak=False)
    assert len(signal.send(a)) == 1
    assert signal.send(b) == []


def test_string_subclass_sender_matches_by_identity() -> None:
    class Name(str):
        pass

    signal = Signal()
    connected = Name("x")
    signal.connect(make_recorder([], "r"), sender=connected, weak=False)
    assert signal.send(Name("x")) == []
    assert signal.send("x") == []
    assert len(signal.send(connected)) == 1


def test_unhashable_senders_work() -> None:
    signal = Signal(use_caching=True)
    sender: list[int] = []
    signal.connect(make_recorder([], "r"), sender=sender, weak=False)
    assert len(signal.send(sender)) == 1
    assert signal.send([]) == []


# -- 7. validation at connect --------------------------------------------------------------


def test_non_callable_receiver_is_rejected() -> None:
    signal = Signal(name="s")
    with pytest.raises(TypeError, match=r"Signal receivers must be callable\..*<Signal 's'>.*42"):
        signal.connect(42)  # type: ignore[type-var]
    assert signal.connections() == []


@pytest.mark.parametrize(
    "bad",
    [
        lambda sender: None,
        lambda sender, *args: None,
        functools.partial(lambda a, sender: None, 1),
    ],
)
def test_receiver_without_kwargs_is_rejected(bad: Any) -> None:
    signal = Signal(name="s")
    with pytest.raises(
        ValueError, match=r"Signal receivers must accept keyword arguments \(\*\*kwargs\)\."
    ):
        signal.connect(bad, weak=False)
    assert signal.connections() == []


def test_kwargs_check_covers_methods_and_callable_objects() -> None:
    class Good:
        def __call__(self, **kwargs: Any) -> None: ...

        def method(self, **kwargs: Any) -> None: ...

    class Bad:
        def __call__(self, sender: Any) -> None: ...

        def method(self, sender: Any) -> None: ...

    signal = Signal()
    good, bad = Good(), Bad()
    signal.connect(good)
    signal.connect(good.method)
    with pytest.raises(ValueError, match=r"Bad\.method"):
        signal.connect(bad.method)
    with pytest.raises(ValueError, match="Bad instance"):
        signal.connect(bad)
    assert len(signal.connections()) == 2


def test_kwargs_check_falls_back_to_signature_for_other_callables() -> None:
    class ReceiverClass:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    signal = Signal()
    signal.connect(ReceiverClass, weak=False)
    with pytest.raises(ValueError):
        signal.connect(print, weak=False)  # print takes no arbitrary keywords
    [(_, instance)] = signal.send("s")
    assert instance.kwargs == {"signal": signal, "sender": "s"}


def test_unhashable_dispatch_uid_is_rejected() -> None:
    signal = Signal(name="s")
    with pytest.raises(TypeError, match=r"dispatch_uid.*<Signal 's'>.*hashable"):
        signal.connect(make_recorder([], "a"), dispatch_uid=["not", "hashable"])
    assert signal.connections() == []


def test_failed_connect_leaves_the_signal_unchanged() -> None:
    signal = Signal()
    keep = make_recorder([], "keep")
    signal.connect(keep)
    before = signal.connections()
    for bad in (None, lambda x: x):
        with pytest.raises((TypeError, ValueError)):
            signal.connect(bad)  # type: ignore[type-var]
    assert signal.connections() == before
    assert signal.send(None) == [(keep, "keep")]


# -- 8. send_robust ------------------------------------------------------------------------


def test_send_robust_returns_exceptions_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    signal = Signal()
    calls: list[Any] = []

    def boom(**kwargs: Any) -> None:
        raise ValueError("bad value")

    last = make_recorder(calls, "last")
    signal.connect(boom)
    signal.connect(last)
    with caplog.at_level(logging.ERROR, logger="tocsin"):
        responses = signal.send_robust(None)
    (r1, error), (r2, value) = responses
    assert r1 is boom and isinstance(error, ValueError) and error.__traceback__ is not None
    assert (r2, value) == (last, "last")
    [record] = caplog.records
    assert record.name == "tocsin"
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        f"Error calling {boom.__module__}.{boom.__qualname__} in Signal.send_robust() (bad value)"
    )
    assert record.exc_info is not None and record.exc_info[1] is error


def test_send_robust_names_partials_and_callable_objects(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def __call__(self, **kwargs: Any) -> None:
            raise KeyError("k")

    def fail(tag: str, **kwargs: Any) -> None:
        raise KeyError(tag)

    signal = Signal()
    obj, part = Failing(), functools.partial(fail, "p")
    signal.connect(obj)
    signal.connect(part)
    with caplog.at_level(logging.ERROR, logger="tocsin"):
        responses = signal.send_robust(None)
    assert [type(r) for _, r in responses] == [KeyError, KeyError]
    messages = [record.getMessage() for record in caplog.records]
    assert "Failing instance" in messages[0]
    assert "functools.partial(" in messages[1] and "fail" in messages[1]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_send_robust_does_not_catch_base_exceptions(exc: type[BaseException]) -> None:
    signal = Signal()

    def interrupt(**kwargs: Any) -> None:
        raise exc

    signal.connect(interrupt)
    with pytest.raises(exc):
        signal.send_robust(None)


# -- 9. re-entrancy ------------------------------------------------------------------------


def test_receiver_connected_during_send_runs_from_the_next_send() -> None:
    signal = Signal()
    calls: list[str] = []
    late = make_recorder([], "late")

    def connector(**kwargs: Any) -> None:
        calls.append("connector")
        signal.connect(late)

    signal.connect(connector)
    assert [r for r, _ in signal.send(None)] == [connector]
    assert [r for r, _ in signal.send(None)] == [connector, late]


def test_receiver_disconnecting_others_during_send_skips_nobody() -> None:
    signal = Signal()
    calls: list[Any] = []
    victim = make_recorder(calls, "victim")

    def disconnector(**kwargs: Any) -> None:
        calls.append(("disconnector", {}))
        signal.disconnect(disconnector)
        signal.disconnect(victim)

    signal.connect(disconnector)
    signal.connect(victim)
    signal.send(None)
    assert [name for name, _ in calls] == ["disconnector", "victim"]
    assert signal.send(None) == []


def test_receiver_may_send_the_same_signal_recursively() -> None:
    signal = Signal()
    depth: list[int] = []

    def recurse(n: int, **kwargs: Any) -> int:
        depth.append(n)
        if n < 3:
            signal.send(None, n=n + 1)
        return n

    signal.connect(recurse)
    signal.send(None, n=0)
    assert depth == [0, 1, 2, 3]


def test_receiver_may_send_another_signal() -> None:
    outer, inner = Signal(), Signal()
    calls: list[str] = []

    def on_inner(**kwargs: Any) -> None:
        calls.append("inner")

    def on_outer(**kwargs: Any) -> None:
        calls.append("outer")
        inner.send(None)

    outer.connect(on_outer)
    inner.connect(on_inner)
    outer.send(None)
    assert calls == ["outer", "inner"]


# -- 11. caching ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_caching", [False, True])
def test_lookup_works_for_every_kind_of_sender(use_caching: bool) -> None:
    signal = Signal(use_caching=use_caching)
    record = make_recorder([], "r")

    class Model:
        pass

    senders: list[Any] = [None, 7, "name", (1, 2), Model, Model(), {"un": "hashable"}]
    for sender in senders:
        signal.connect(record, sender=sender)
    for sender in senders:
        expected = [record] if sender is None else [record, record]
        assert signal.receivers_for(sender) == expected
        assert [r for r, _ in signal.send(sender)] == expected


def test_cache_follows_connect_and_disconnect_between_sends() -> None:
    signal = Signal(use_caching=True)
    a, b = make_recorder([], "a"), make_recorder([], "b")
    signal.connect(a, sender="x")
    assert [r for r, _ in signal.send("x")] == [a]
    signal.connect(b)
    assert [r for r, _ in signal.send("x")] == [a, b]
    signal.disconnect(a, sender="x")
    assert [r for r, _ in signal.send("x")] == [b]


def test_providing_args_is_accepted_as_declared_arguments() -> None:
    assert Signal(providing_args=["instance", "created"]).arguments == ("instance", "created")
    assert Signal(["request", "user"]).arguments == ("request", "user")  # type: ignore[arg-type]
    assert Signal(use_caching=True).use_caching is True


def test_a_receiver_changing_its_kwargs_does_not_affect_the_next_one() -> None:
    signal = Signal()
    seen: list[dict[str, Any]] = []

    def meddler(**kwargs: Any) -> None:
        kwargs["extra"] = "added"
        kwargs.pop("value")

    def witness(**kwargs: Any) -> None:
        seen.append(dict(kwargs))

    signal.connect(meddler)
    signal.connect(witness)
    for send in (signal.send, signal.send_robust):
        send("s", value=1)
    assert seen == [{"signal": signal, "sender": "s", "value": 1}] * 2


@pytest.mark.parametrize("method", ["send", "send_robust", "asend", "asend_robust"])
def test_an_argument_named_signal_is_refused_before_any_receiver_runs(method: str) -> None:
    signal = Signal(name="s")
    calls: list[Any] = []
    signal.connect(make_recorder(calls, "r"), weak=False)
    call = getattr(signal, method)
    with pytest.raises(TypeError, match=r"<Signal 's'> was sent with an argument named 'signal'"):
        result = call(None, signal="other")
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    assert calls == []


def test_connections_are_listed_in_call_order_sync_before_async() -> None:
    signal = Signal()

    async def first_but_async(**kwargs: Any) -> None: ...

    signal.connect(first_but_async, weak=False)
    signal.connect(r_a)
    signal.connect(r_b, sender="x")
    assert [(c.receiver, c.is_async) for c in signal.connections()] == [
        (r_a, False),
        (r_b, False),
        (first_but_async, True),
    ]
    assert signal.receivers_for("x") == [r_a, r_b, first_but_async]


# -- the compiled send functions (tocsin/_sendcode.py) ------------------------------------------


def kwargs_echo(**kwargs: Any) -> dict[str, Any]:
    return kwargs


@pytest.mark.parametrize(
    "named",
    [
        {},
        {"instance": 1, "created": True},
        {"created": True, "instance": 1},  # same names, other order
        {"class": 1, "from": 2},  # keywords: cannot be compiled as parameters
        {"a-b": 1, "": 2},  # not identifiers
        {"__tocsin_refs": 1, "__tocsin_receiver": 2},  # the loops' own names
        {"__debug__": 1},
        {"Exception": "not the builtin", "get": 3, "responses": 4},
    ],
)
@pytest.mark.parametrize("method", ["send", "send_robust"])
def test_receivers_get_exactly_the_names_sent_whatever_they_are(
    named: dict[str, Any], method: str
) -> None:
    signal = Signal()
    signal.connect(kwargs_echo)
    signal.connect(kwargs_echo, sender="s")
    responses = getattr(signal, method)("s", **named)
    expected = {"signal": signal, "sender": "s", **named}
    assert [(r, list(kw.items())) for r, kw in responses] == [
        (kwargs_echo, list(expected.items())),
        (kwargs_echo, list(expected.items())),
    ]


def test_send_robust_catches_exceptions_when_an_argument_is_named_exception() -> None:
    signal = Signal()

    def boom(**kwargs: Any) -> None:
        raise ValueError("boom")

    signal.connect(boom)
    [(receiver, error)] = signal.send_robust(None, Exception=KeyError)
    assert receiver is boom and isinstance(error, ValueError)


@pytest.fixture
def factory_cache_restored() -> Iterator[None]:
    """Leave the compiled-send cache as found, so later tests still get compiled sends."""
    saved = dict(_sendcode._factories)
    yield
    _sendcode._factories.clear()
    _sendcode._factories.update(saved)


@pytest.mark.usefixtures("factory_cache_restored")
def test_many_different_argument_sets_all_work() -> None:
    receivers = []
    for i in range(600):  # past the number of compiled sends that are kept
        signal = Signal()
        signal.connect(kwargs_echo)
        named = {f"arg_{i}": i, f"other_{i % 7}": -i}
        [(_, kwargs)] = signal.send(None, **named)
        assert kwargs == {"signal": signal, "sender": None, **named}
        receivers.append(signal)
    # The rest got the send compiled for no names, which is always let into the cache.
    assert len(_sendcode._factories) <= _sendcode._MAX_COMPILED + 4


@pytest.mark.usefixtures("factory_cache_restored")
def test_a_full_cache_still_compiles_a_send_for_no_names() -> None:
    _sendcode._factories.clear()
    for i in range(_sendcode._MAX_COMPILED):  # fill the cache with other names
        signal = Signal()
        signal.send(None, **{f"arg_{i}": i})
    assert len(_sendcode._factories) == _sendcode._MAX_COMPILED
    late = Signal()
    late.connect(kwargs_echo)
    for method in ("send", "send_robust"):
        [(_, received)] = getattr(late, method)(None, order=1)
        assert received == {"signal": late, "sender": None, "order": 1}
        filename = getattr(late, method).__code__.co_filename
        assert filename == f"<tocsin {method}(), checked>"  # no names were checked for it
    strict = Signal(arguments=["order"], strict=True)
    strict.connect(kwargs_echo)
    strict.send(None, order=1)
    with pytest.raises(TypeError, match="missing the required argument 'order'"):
        strict.send(None)


def test_a_signal_sent_with_other_names_than_its_first_send_still_works() -> None:
    signal = Signal()
    signal.connect(kwargs_echo)
    signal.send(None, instance=1, created=True)  # compiles send for (instance, created)
    for named in [{}, {"instance": 1}, {"x": 1, "instance": 2}, {"created": 0, "y": 1}]:
        [(_, kwargs)] = signal.send(None, **named)
        assert kwargs == {"signal": signal, "sender": None, **named}


def test_receivers_get_the_keywords_in_the_order_of_the_first_send() -> None:
    """The compiled send spells its names out in the order of the signal's first send; a
    later send naming the same arguments in another order reaches receivers in that first
    order (a dict compares equal either way). Names outside that set come after, as passed."""
    signal = Signal()
    signal.connect(kwargs_echo)
    signal.send(None, instance=1, created=True)
    [(_, kwargs)] = signal.send(None, created=False, instance=2)
    assert list(kwargs) == ["signal", "sender", "instance", "created"]
    [(_, kwargs)] = signal.send(None, extra=3, created=False, instance=2)
    assert list(kwargs) == ["signal", "sender", "instance", "created", "extra"]


# -- muted() and connected_to() --------------------------------------------------------------


@pytest.mark.parametrize("method", ["send", "send_robust", "asend", "asend_robust"])
def test_a_muted_signal_calls_nobody(method: str) -> None:
    signal = Signal()
    calls: list[Any] = []
    signal.connect(make_recorder(calls, "a"), weak=False)

    def send() -> Any:
        result = getattr(signal, method)(None)
        return asyncio.run(result) if method.startswith("a") else result

    with signal.muted():
        assert send() == []
    assert calls == []
    assert len(send()) == 1


def test_muted_blocks_nest_and_restore_on_errors() -> None:
    signal = Signal()
    signal.connect(r_a)
    with pytest.raises(KeyError), signal.muted():
        with signal.muted():
            pass
        assert signal.send(None) == []
        raise KeyError
    assert signal.send(None) == [(r_a, "a")]


def test_connections_made_while_muted_stay_in_order() -> None:
    signal = Signal()
    signal.connect(r_a)
    with signal.muted():
        signal.connect(r_b)
        signal.disconnect(r_a)
        signal.connect(r_a)
    assert [r for r, _ in signal.send(None)] == [r_b, r_a]


def test_connected_to_connects_for_the_block_only() -> None:
    signal = Signal()
    calls: list[Any] = []
    with signal.connected_to(make_recorder(calls, "temp"), sender="x") as temp:
        assert signal.receivers_for("x") == [temp]
        signal.send("x")
    assert signal.connections() == []
    assert [name for name, _ in calls] == ["temp"]


def test_connected_to_disconnects_even_on_base_exceptions() -> None:
    signal = Signal()
    with pytest.raises(KeyboardInterrupt), signal.connected_to(lambda **kw: None):
        raise KeyboardInterrupt
    assert signal.connections() == []


def test_connected_to_leaves_a_connection_made_before_the_block() -> None:
    signal = Signal()
    signal.connect(r_a)
    with signal.connected_to(r_a):
        assert signal.receivers_for(None) == [r_a]
    assert signal.receivers_for(None) == [r_a]


def test_a_name_given_as_the_first_argument_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"pass name=: Signal\(name='order_paid'\)"):
        Signal("order_paid")  # type: ignore[arg-type]
