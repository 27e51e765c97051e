"""The codec's rules: what travels as itself, what travels as an import path, what is refused
at the send (with the signal and the argument named, before any receiver runs), and what is
dropped on arrival."""

from __future__ import annotations

import asyncio
import datetime
import enum
import json
import math
import pickle
import queue
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from tocsin import Signal
from tocsin.bridge import Bridge, JsonCodec, MemoryTransport

WAIT = 10.0


class Shop:
    """A sender class whose module (this one) is imported on the receiving side."""


class Colour(enum.IntEnum):
    RED = 1


class Loop:
    """Two bridged 'processes' over one MemoryTransport: send on ``local``, receive on
    ``remote``."""

    def __init__(self, codec: Any = None) -> None:
        transport = MemoryTransport()
        self.local, self.remote = Signal(name="ticks"), Signal(name="ticks")
        self.local_calls: list[dict[str, Any]] = []
        self.arrived: queue.Queue[tuple[object, dict[str, Any]]] = queue.Queue()
        self.local.connect(self._on_local, weak=False)
        self.remote.connect(self._on_remote, weak=False)
        self.sending = Bridge(transport, codec=codec)
        self.listening = Bridge(transport, codec=codec)
        self.sending.forward(self.local)
        self.listening.listen(self.remote)

    def _on_local(self, sender: object, **kwargs: Any) -> None:
        self.local_calls.append(kwargs)

    def _on_remote(self, sender: object, signal: Signal, **kwargs: Any) -> None:
        self.arrived.put((sender, kwargs))

    def round_trip(self, sender: object = None, **kwargs: Any) -> tuple[object, dict[str, Any]]:
        self.local.send(sender, **kwargs)
        return self.arrived.get(timeout=WAIT)


@pytest.fixture
def loop() -> Iterator[Loop]:
    bridged = Loop()
    with bridged.sending, bridged.listening:
        yield bridged


@pytest.mark.parametrize("sender", [None, "shop", 7, 2.5, True, False, 0, -0.0, ""])
def test_scalar_senders_travel_as_themselves(loop: Loop, sender: object) -> None:
    arrived, _ = loop.round_trip(sender, n=1)
    assert arrived == sender
    assert type(arrived) is type(sender)


def test_a_class_sender_arrives_as_the_class_and_sender_filters_match(loop: Loop) -> None:
    shop_only: list[object] = []

    def on_shop(sender: object, **kwargs: Any) -> None:
        shop_only.append(sender)

    loop.remote.connect(on_shop, sender=Shop, weak=False)
    arrived, _ = loop.round_trip(Shop, n=1)
    assert arrived is Shop
    assert shop_only == [Shop]


def test_a_class_that_cannot_be_found_arrives_as_its_import_path(loop: Loop) -> None:
    class Local:
        pass

    arrived, _ = loop.round_trip(Local, n=1)
    assert (
        arrived
        == f"{__name__}:test_a_class_that_cannot_be_found_arrives_as_its_import_path.<locals>.Local"
    )


def test_a_path_to_a_module_not_imported_stays_a_string_and_imports_nothing() -> None:
    assert "antigravity" not in sys.modules
    body = b'{"signal":"ticks","sender":{"class":"antigravity:Thing"},"kwargs":{}}'
    assert JsonCodec().decode(body) == ("ticks", "antigravity:Thing", {})
    assert "antigravity" not in sys.modules


def test_arguments_round_trip_exactly(loop: Loop) -> None:
    sent = {
        "order": 42,
        "big": 2**80,
        "price": 9.5,
        "ratio": math.inf,
        "nothing": None,
        "flag": False,
        "text": "naïve café ✓ \U0001f600",
        "items": [{"sku": "A-1", "qty": 2, "tags": []}, {"sku": "B", "qty": 1, "tags": ["x"]}],
        "empty": {},
    }
    _, kwargs = loop.round_trip(None, **sent)
    assert kwargs == sent
    assert type(kwargs["price"]) is float and type(kwargs["order"]) is int
    _, kwargs = loop.round_trip(None, value=math.nan)
    assert math.isnan(kwargs["value"])
    _, kwargs = loop.round_trip(None)
    assert kwargs == {}


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        (datetime.date(2024, 1, 2), "when is a datetime.date"),
        ((1, 2), "JSON has no tuples"),
        ({1, 2}, "when is a set"),
        (b"bytes", "when is a bytes"),
        (Colour.RED, "a subclass of int"),
        ({1: "a"}, "when has the key 1 (int)"),
        ({"a": [1, {"b": object()}]}, "when['a'][1]['b'] is an object"),
        (Shop(), "when is a test_bridge_codec.Shop"),
    ],
)
def test_an_argument_json_cannot_carry_exactly_is_refused_at_the_send(
    loop: Loop, value: object, complaint: str
) -> None:
    with pytest.raises(TypeError) as raised:
        loop.local.send(None, order=1, when=value)
    message = str(raised.value)
    assert message.startswith("<Signal 'ticks'>.send(): the bridge cannot forward argument 'when'")
    assert complaint in message
    assert loop.local_calls == []  # no receiver ran


def test_a_cycle_is_refused(loop: Loop) -> None:
    looping: list[object] = []
    looping.append(looping)
    with pytest.raises(TypeError, match="'cycle': cycle\\[0\\] contains itself"):
        loop.local.send(None, cycle=looping)


def test_every_send_method_refuses_before_any_receiver(loop: Loop) -> None:
    bad = datetime.datetime(2024, 1, 2)
    with pytest.raises(
        TypeError, match="send_robust\\(\\): the bridge cannot forward argument 'at'"
    ):
        loop.local.send_robust(None, at=bad)
    with pytest.raises(TypeError, match="\\.asend\\(\\): the bridge cannot forward argument 'at'"):
        asyncio.run(loop.local.asend(None, at=bad))
    with pytest.raises(TypeError, match="asend_robust\\(\\): the bridge cannot forward argument"):
        asyncio.run(loop.local.asend_robust(None, at=bad))
    assert loop.local_calls == []
    loop.sending.stop()
    assert loop.sending.stats.sent == 0


@pytest.mark.parametrize("sender", [object(), len, Shop(), (1, 2), b"x"])
def test_other_senders_are_refused_at_the_send(loop: Loop, sender: object) -> None:
    with pytest.raises(TypeError) as raised:
        loop.local.send(sender, n=1)
    message = str(raised.value)
    assert message.startswith("<Signal 'ticks'>.send(): the bridge cannot forward the sender")
    assert "None, str, int, float, bool or a class" in message
    assert loop.local_calls == []


def test_the_json_codec_refuses_to_decode_what_it_did_not_encode() -> None:
    codec = JsonCodec()
    for data in (b"\xff", b"[1, 2]", b'{"signal": 1, "sender": null, "kwargs": {}}', b"{"):
        with pytest.raises(ValueError):
            codec.decode(data)
    assert json.loads(codec.encode("n", None, {"a": 1})) == {
        "signal": "n",
        "sender": None,
        "kwargs": {"a": 1},
    }


class PickleCodec:
    """A codec of the user's: pickle, between processes that trust each other."""

    def encode(self, name: str, sender: object, kwargs: Mapping[str, Any]) -> bytes:
        return pickle.dumps((name, sender, dict(kwargs)))

    def decode(self, data: bytes) -> tuple[str, object, dict[str, Any]]:
        name, sender, kwargs = pickle.loads(data)
        return name, sender, kwargs


def test_a_codec_of_ones_own_carries_what_json_cannot_and_names_what_it_cannot() -> None:
    bridged = Loop(codec=PickleCodec())
    with bridged.sending, bridged.listening:
        when = datetime.datetime(2024, 1, 2, 3, 4)
        sender, kwargs = bridged.round_trip((1, 2), when=when, pair=(3, 4))
        assert sender == (1, 2) and kwargs == {"when": when, "pair": (3, 4)}
        with pytest.raises(TypeError, match=r"cannot forward argument 'callback': Can't"):
            bridged.local.send(None, n=1, callback=lambda: None)
