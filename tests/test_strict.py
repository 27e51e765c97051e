"""Strict mode: a send with an unknown or missing argument fails before any receiver runs.

Every behaviour is checked through each of the four ways to send: send, send_robust, asend
and asend_robust (the async ones under ``asyncio.run``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tocsin import Argument, Signal, catalogue, set_strict

# Each test starts with the global setting off (see conftest.py), and may change it.
pytestmark = pytest.mark.usefixtures("global_strict_off")

SEND_METHODS = ("send", "send_robust", "asend", "asend_robust")

Send = Callable[..., list[tuple[Any, Any]]]


@pytest.fixture(params=SEND_METHODS)
def send_with(request: pytest.FixtureRequest) -> Callable[[Signal], Send]:
    """Give each test a way to call one send method of a signal as a plain synchronous call."""
    method: str = request.param

    def bind(signal: Signal) -> Send:
        bound = getattr(signal, method)
        if method.startswith("a"):
            return lambda sender, **named: asyncio.run(bound(sender, **named))
        return bound  # type: ignore[no-any-return]

    return bind


class Calls(list[dict[str, Any]]):
    def receiver(self, sender: object, **named: Any) -> str:
        named.pop("signal", None)
        self.append(named)
        return "ran"


def order_placed(strict: bool | None = True) -> tuple[Signal, Calls]:
    """A strict signal declaring two required arguments and an optional one, and a listener."""
    signal = Signal(
        name="order_placed",
        arguments=[
            Argument("order", "The order."),
            Argument("table", "Where it goes."),
            Argument("note", "Anything for the kitchen.", optional=True),
        ],
        strict=strict,
    )
    calls = Calls()
    signal.connect(calls.receiver, weak=False)
    return signal, calls


# --- unknown, missing, optional, hinted ---------------------------------------------------------


def test_unknown_argument_raises_naming_signal_and_argument(
    send_with: Callable[[Signal], Send],
) -> None:
    signal, calls = order_placed()
    with pytest.raises(TypeError, match=r"'order_placed'.*unexpected argument 'colour'"):
        send_with(signal)(None, order=1, table="A", colour="red")
    assert calls == []


def test_missing_required_argument_raises_naming_it(send_with: Callable[[Signal], Send]) -> None:
    signal, calls = order_placed()
    with pytest.raises(TypeError, match=r"'order_placed'.*missing.*'table'"):
        send_with(signal)(None, order=1)
    assert calls == []


def test_optional_argument_may_be_left_out_or_given(send_with: Callable[[Signal], Send]) -> None:
    signal, calls = order_placed()
    send = send_with(signal)
    assert send(None, order=1, table="A") == [(calls.receiver, "ran")]
    assert send(None, order=2, table="B", note="no basil") == [(calls.receiver, "ran")]
    assert calls == [{"order": 1, "table": "A"}, {"order": 2, "table": "B", "note": "no basil"}]


def test_misspelt_argument_gets_a_did_you_mean_hint(send_with: Callable[[Signal], Send]) -> None:
    signal, calls = order_placed()
    with pytest.raises(TypeError, match=r"'tabel'.*did you mean 'table'"):
        send_with(signal)(None, order=1, tabel="A")
    assert calls == []


def test_unrelated_argument_gets_no_hint(send_with: Callable[[Signal], Send]) -> None:
    signal, _ = order_placed()
    with pytest.raises(TypeError) as raised:
        send_with(signal)(None, order=1, table="A", zzz=0)
    assert "did you mean" not in str(raised.value)


def test_error_lists_the_declared_arguments(send_with: Callable[[Signal], Send]) -> None:
    signal, _ = order_placed()
    with pytest.raises(TypeError, match="order, table, note"):
        send_with(signal)(None, order=1, table="A", colour="red")


def test_sender_given_by_keyword_is_not_an_argument(send_with: Callable[[Signal], Send]) -> None:
    signal, calls = order_placed()
    send_with(signal)(sender="kitchen", order=1, table="A")
    assert calls == [{"order": 1, "table": "A"}]


def test_signal_declaring_no_arguments_rejects_any(send_with: Callable[[Signal], Send]) -> None:
    signal = Signal(name="closing_time", arguments=(), strict=True)
    assert send_with(signal)(None) == []
    with pytest.raises(TypeError, match=r"'closing_time'.*unexpected argument 'hour'"):
        send_with(signal)(None, hour=23)


def test_robust_sends_raise_rather_than_report_a_bad_send() -> None:
    # send_robust turns a receiver's exception into its response; a bad send is the caller's
    # mistake, so it must raise instead of hiding among the responses.
    signal, calls = order_placed()
    with pytest.raises(TypeError):
        signal.send_robust(None, order=1)
    with pytest.raises(TypeError):
        asyncio.run(signal.asend_robust(None, order=1))
    assert calls == []


def test_async_receivers_are_not_run_by_a_bad_send(send_with: Callable[[Signal], Send]) -> None:
    signal, calls = order_placed()
    awaited: list[object] = []

    async def listen(sender: object, **named: Any) -> None:
        awaited.append(named)

    signal.connect(listen, weak=False)
    with pytest.raises(TypeError):
        send_with(signal)(None, order=1, colour="red")
    assert calls == []
    assert awaited == []


# --- the ways to declare arguments are all checked ----------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ["order", "table"],
        [Argument("order"), Argument("table")],
        {"order": "The order.", "table": "Where it goes."},
    ],
    ids=["names", "Argument objects", "mapping"],
)
def test_each_way_of_declaring_arguments_is_checked(
    send_with: Callable[[Signal], Send], arguments: Any
) -> None:
    signal = Signal(name="order_served", arguments=arguments, strict=True)
    assert signal.arguments == ("order", "table")
    send_with(signal)(None, order=1, table="A")
    with pytest.raises(TypeError, match="did you mean 'order'"):
        send_with(signal)(None, ordr=1, table="A")


# --- who is strict: the signal's own choice, else the global one --------------------------------


def test_undeclared_signal_is_never_checked(send_with: Callable[[Signal], Send]) -> None:
    signal = Signal(name="anything_goes", strict=True)
    set_strict(True)
    assert signal.strict is False
    assert signal.argument_specs is None
    send_with(signal)(None, whatever=1)


def test_global_setting_applies_to_signals_that_do_not_choose(
    send_with: Callable[[Signal], Send],
) -> None:
    signal, calls = order_placed(strict=None)
    assert signal.strict is False
    send_with(signal)(None, colour="red")
    set_strict(True)
    assert signal.strict is True
    with pytest.raises(TypeError, match="'colour'"):
        send_with(signal)(None, colour="red")
    set_strict(False)
    send_with(signal)(None, colour="blue")
    assert calls == [{"colour": "red"}, {"colour": "blue"}]


def test_own_setting_beats_the_global_one(send_with: Callable[[Signal], Send]) -> None:
    relaxed, _ = order_placed(strict=False)
    checked, _ = order_placed(strict=True)
    set_strict(True)
    send_with(relaxed)(None, colour="red")
    set_strict(False)
    with pytest.raises(TypeError):
        send_with(checked)(None, colour="red")


def test_switching_strict_on_a_signal_that_already_sent_takes_effect_at_once(
    send_with: Callable[[Signal], Send],
) -> None:
    signal, _ = order_placed(strict=None)
    send_with(signal)(None, colour="red")
    signal.strict = True
    with pytest.raises(TypeError):
        send_with(signal)(None, colour="red")
    signal.strict = None
    send_with(signal)(None, colour="red")


def test_strict_checks_a_signal_nobody_listens_to(send_with: Callable[[Signal], Send]) -> None:
    signal = Signal(name="unheard", arguments=["order"], strict=True)
    with pytest.raises(TypeError, match="'unheard'"):
        send_with(signal)(None, ordr=1)


def test_catalogue_signals_follow_the_global_setting(send_with: Callable[[Signal], Send]) -> None:
    set_strict(True)
    with pytest.raises(TypeError, match=r"'post_save'.*did you mean 'created'"):
        send_with(catalogue.post_save)(
            object,
            instance=object(),
            create=True,
            raw=False,
            using="default",
            update_fields=None,
        )


# --- the environment variable -----------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("1", "True"), ("", "False"), (None, "False")])
def test_tocsin_strict_environment_variable_is_read_at_import(
    value: str | None, expected: str
) -> None:
    environment = {k: v for k, v in os.environ.items() if k != "TOCSIN_STRICT"}
    if value is not None:
        environment["TOCSIN_STRICT"] = value
    script = "import tocsin; print(tocsin.Signal(arguments=['order']).strict)"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == expected


def test_strict_choice_tells_the_own_setting_from_the_global_one() -> None:
    follower, chooser = Signal(arguments=["x"]), Signal(arguments=["x"], strict=False)
    assert (follower.strict_choice, chooser.strict_choice) == (None, False)
    chooser.strict = None
    assert chooser.strict_choice is None
