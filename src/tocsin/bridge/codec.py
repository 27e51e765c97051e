"""How a send's sender and keyword arguments become bytes on a broker, and back.

A bridge hands its codec ``encode(name, sender, kwargs)`` at every forwarded send and
``decode(data)`` for every message that arrives. ``JsonCodec``, the default, promises that a
receiver in another process gets *exactly* what the sender passed: same types, same values.
JSON cannot say "tuple", "datetime", "a dict with int keys" or "an IntEnum", and quietly
turning them into lists, strings or plain ints would hand receivers something the sender
never sent. So the codec refuses them at the send, with the path to the value at fault, and
the sender converts explicitly.

Senders travel by value when they are None, str, int, float or bool, and by import path
(``"package.module:Class"``) when they are classes. On arrival a path becomes the class again
when its module is already imported in the receiving process; otherwise it stays a string.
The codec never imports a module because a message names it: whoever can publish to the
broker would otherwise choose what code the receiving process runs. A receiver that filters
on a sender class has imported that class already, so it loses nothing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["Codec", "JsonCodec"]


class Codec(Protocol):
    """What a bridge needs from a codec: a way there and a way back.

    ``encode`` raises ``TypeError`` (or ``ValueError``) for a sender or an argument it cannot
    carry; the bridge turns that into a ``TypeError`` naming the signal and the argument,
    raised from the send. ``decode`` raises ``ValueError`` for bytes it cannot read; the
    bridge logs and drops such a message.
    """

    def encode(self, name: str, sender: object, kwargs: Mapping[str, Any]) -> bytes:
        """The message for one send of the signal published under ``name``."""
        ...

    def decode(self, data: bytes) -> tuple[str, object, dict[str, Any]]:
        """``(name, sender, kwargs)`` read back from what ``encode`` made."""
        ...


# Exact types only: a subclass (an IntEnum, a str Enum, a bool subclass) would arrive as its
# base type, which is not what the sender passed.
_SCALARS = frozenset({str, int, float, bool, type(None)})

_BASES = (str, int, float, list, dict)

# One encoder made once (json.dumps makes one per call with these options). It need not look
# for cycles: encode() has checked every list and dict already.
_to_json = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), check_circular=False).encode

_CARRIES = "None, bool, int, float, str, and lists and str-keyed dicts of them"


class JsonCodec:
    """The default codec: compact, ASCII-only JSON that round-trips exactly.

    Arguments may be None, bool, int, float (NaN and infinities included), str, and lists
    and dicts with str keys of those, nested as deep as you like. Anything else (a tuple, a
    set, bytes, a datetime, a Decimal, an object, a subclass of an allowed type) is refused
    with a ``TypeError`` that shows where it is. Senders may be None, str, int, float, bool
    or a class.
    """

    def encode(self, name: str, sender: object, kwargs: Mapping[str, Any]) -> bytes:
        """JSON for one send; raises ``TypeError`` naming what JSON would not carry exactly."""
        for key, value in kwargs.items():
            if type(value) not in _SCALARS:
                _check_value(value, key, set())
        if type(sender) not in _SCALARS:
            sender = _encode_sender(sender)
        message = {"signal": name, "sender": sender, "kwargs": kwargs}
        return _to_json(message).encode("ascii")

    def decode(self, data: bytes) -> tuple[str, object, dict[str, Any]]:
        """``(name, sender, kwargs)`` from ``encode``'s output; ``ValueError`` if it is not."""
        try:
            message = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(message, dict) or set(message) != {"signal", "sender", "kwargs"}:
            raise ValueError("not a message of tocsin's JSON codec")
        name, sender, kwargs = message["signal"], message["sender"], message["kwargs"]
        if not isinstance(name, str) or not isinstance(kwargs, dict):
            raise ValueError("not a message of tocsin's JSON codec")
        return name, _decode_sender(sender), kwargs


def _check_value(value: object, path: str, open_containers: set[int]) -> None:
    """Raise TypeError unless ``value`` survives a JSON round trip unchanged."""
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is list or kind is dict:
        if id(value) in open_containers:
            raise TypeError(f"{path} contains itself; JSON cannot carry a cycle")
        open_containers.add(id(value))
        if kind is list:
            items: list[object] = value  # type: ignore[assignment]
            for index, item in enumerate(items):
                _check_value(item, f"{path}[{index}]", open_containers)
        else:
            mapping: dict[object, object] = value  # type: ignore[assignment]
            for key, item in mapping.items():
                if type(key) is not str:
                    raise TypeError(
                        f"{path} has the key {key!r} ({type(key).__qualname__}); JSON objects "
                        "only have str keys, so it would arrive as a string"
                    )
                _check_value(item, f"{path}[{key!r}]", open_containers)
        open_containers.discard(id(value))
        return
    hint = ""
    if kind is tuple:
        hint = " (JSON has no tuples: it would arrive as a list; pass a list)"
    elif isinstance(value, _BASES):
        base = next(b for b in kind.__mro__ if b in _BASES)
        hint = f" (a subclass of {base.__qualname__}: it would arrive as a plain one)"
    raise TypeError(
        f"{path} is {_a(kind)}{hint}; the JSON codec carries {_CARRIES}, so that receivers "
        "get exactly what was sent"
    )


def _encode_sender(sender: object) -> object:
    if isinstance(sender, type):
        return {"class": f"{sender.__module__}:{sender.__qualname__}"}
    raise TypeError(
        f"the sender {sender!r} is {_a(type(sender))}; the JSON codec carries senders that "
        "are None, str, int, float, bool or a class"
    )


def _decode_sender(sender: object) -> object:
    if isinstance(sender, dict):
        path = sender.get("class")
        if len(sender) != 1 or not isinstance(path, str):
            raise ValueError(f"unreadable sender {sender!r}")
        return _resolve_class(path)
    if type(sender) not in _SCALARS:
        raise ValueError(f"unreadable sender {sender!r}")
    return sender


def _resolve_class(path: str) -> object:
    """The class at ``path`` when its module is imported already, else ``path`` itself."""
    module_name, _, qualname = path.partition(":")
    found: object = sys.modules.get(module_name)
    if found is None or not qualname:
        return path
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            return path
    return found if isinstance(found, type) else path


def _a(kind: type) -> str:
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    return f"an {name}" if name[0] in "aeiouAEIOU" else f"a {name}"
