"""The envelope around a codec's bytes: who published a message, when, under which name.

A message on the broker is one line of JSON, the envelope, then the codec's bytes::

    {"tocsin":1,"bridge":"5f0c...","host":"web-1","pid":4242,"name":"order_placed","seq":7,
     "time":1767225600.25}
    {"signal":"order_placed","sender":null,"kwargs":{"order":42}}

The envelope is the bridge's, the rest the codec's, so a custom codec never has to carry
origins. ``seq`` numbers one bridge's messages; besides helping whoever reads a broker's
traffic, it keeps two identical sends in one PostgreSQL transaction distinct, which
PostgreSQL would otherwise fold into one notification.

``incoming()`` reads the envelope of the message being delivered, through a context variable
the bridge sets around each delivery.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["Incoming", "incoming"]


@dataclass(frozen=True, slots=True)
class Incoming:
    """Where and when a message delivered by a bridge was published."""

    host: str
    """The host name of the publishing process (``socket.gethostname()`` there)."""
    pid: int
    """The publishing process's id."""
    bridge: str
    """The id of the bridge that published it (``Bridge.id``)."""
    published: float
    """When it was sent, in seconds since the epoch, as ``time.time()`` gave it there."""


delivering: ContextVar[Incoming | None] = ContextVar("tocsin_bridge_incoming", default=None)


def incoming() -> Incoming | None:
    """The origin and publish time of the message a bridge is delivering, or None.

    Inside a receiver that a bridge called for a message from another process, this is that
    message's ``Incoming``; inside a receiver called by a local send, it is None. A send that
    such a receiver makes runs within the delivery, so its receivers see the same value.
    """
    return delivering.get()


class Envelopes:
    """Writes one bridge's envelopes: the parts that never change are made once."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._head = (
            f'{{"tocsin":1,"bridge":{json.dumps(bridge)},"host":{json.dumps(self.host)},'
            f'"pid":{self.pid},"name":'
        )
        self._seq = itertools.count()  # next() on a count is atomic under the GIL

    def prefix(self, name: str) -> bytes:
        """The start of every envelope for ``name``, to be handed back to ``wrap``."""
        return f"{self._head}{json.dumps(name)},".encode("ascii")

    def wrap(self, prefix: bytes, body: bytes) -> bytes:
        """The message: an envelope stamped now, then ``body``."""
        # %a of a float is its repr, which JSON reads back exactly.
        return b'%s"seq":%d,"time":%a}\n%s' % (prefix, next(self._seq), time.time(), body)


def open_envelope(data: bytes) -> tuple[str, Incoming, bytes]:
    """``(name, origin, body)`` of a message; ``ValueError`` if it has no valid envelope."""
    head, newline, body = data.partition(b"\n")
    try:
        envelope = json.loads(head)
    except (UnicodeDecodeError, json.JSONDecodeError):
        envelope = None
    if not newline or not isinstance(envelope, dict) or envelope.get("tocsin") != 1:
        raise ValueError("it has no tocsin envelope")
    name, bridge = envelope.get("name"), envelope.get("bridge")
    host, pid, published = envelope.get("host"), envelope.get("pid"), envelope.get("time")
    if not (
        isinstance(name, str)
        and isinstance(bridge, str)
        and isinstance(host, str)
        and type(pid) is int
        and (type(published) is float or type(published) is int)
    ):
        raise ValueError("its tocsin envelope is incomplete")
    return name, Incoming(host, pid, bridge, float(published)), body
