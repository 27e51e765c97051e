"""Sends that reach other processes: a ``Bridge`` publishes chosen signals' sends on a broker
(Redis, PostgreSQL) and sends what other processes publish through local signals.

The core never imports this package; each broker's client is an optional extra
(``tocsin[redis]``, ``tocsin[postgres]``), imported only when its transport is made. See
docs/bridge.md.
"""

from tocsin.bridge._bridge import Bridge
from tocsin.bridge._envelope import Incoming, incoming
from tocsin.bridge._health import Health, Stats
from tocsin.bridge.codec import Codec, JsonCodec
from tocsin.bridge.memory import MemoryTransport

__all__ = [
    "Bridge",
    "Codec",
    "Health",
    "Incoming",
    "JsonCodec",
    "MemoryTransport",
    "Stats",
    "incoming",
]
