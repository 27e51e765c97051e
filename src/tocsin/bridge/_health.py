"""What a bridge reports about itself (``Stats``, ``Health``), the counters and connection
states behind those reports, and the backoff between attempts to reconnect.

The counters are written by the bridge's threads and read by anyone, so they sit behind one
lock; nothing on a local send's fast path takes it (only a send dropped for a full queue
counts there).
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

__all__ = ["Health", "Stats"]

logger = logging.getLogger("tocsin.bridge")


@dataclass(frozen=True, slots=True)
class Stats:
    """A bridge's counts since it was created."""

    sent: int
    """Messages the broker accepted from this bridge (under ``publish_on``, the messages
    handed to the user's transaction, which may yet roll back)."""
    received: int
    """Messages from other bridges delivered to this process's receivers."""
    dropped: int
    """Messages given up: a full queue at a send, undecodable on arrival, unsent at stop."""
    errors: int
    """Broker failures: a failed connect, publish or receive (each one is logged)."""
    reconnects: int
    """Connections made again after a failure."""


@dataclass(frozen=True, slots=True)
class Health:
    """Whether a bridge can do its job right now. True in a boolean test when connected."""

    running: bool
    """Between ``start()`` and ``stop()``."""
    connected: bool
    """Running, and its connections to the broker (publishing, and listening if it listens)
    are up, as far as it last saw."""
    pending: int
    """Forwarded sends waiting in the queue for the broker."""
    last_error: str | None
    """The last broker failure, or None if there was none."""

    def __bool__(self) -> bool:
        return self.connected


class Tally:
    """The counters and connection states of one bridge, shared by its threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = self.received = self.dropped = self.errors = self.reconnects = 0
        self.last_error: str | None = None

    def count(self, field: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + amount)

    def failure(self, what: str, error: BaseException) -> None:
        """Count and remember a broker failure (the caller logs it)."""
        with self._lock:
            self.errors += 1
            self.last_error = f"{what}: {type(error).__name__}: {error}"

    def stats(self) -> Stats:
        with self._lock:
            return Stats(self.sent, self.received, self.dropped, self.errors, self.reconnects)


class Link:
    """One connection's state as a bridge thread sees it: up, down, and how it went down.

    Logs the first failure of an outage at ERROR, the retries after it at DEBUG, and the
    reconnection at WARNING, so a broker that is down for an hour does not flood the log.
    """

    def __init__(self, role: str, tally: Tally) -> None:
        self.role = role  # "publisher" or "listener", for the log
        self._tally = tally
        self.connected = False
        self._failures = 0  # in the current outage
        self._ever_connected = False

    def up(self) -> None:
        if self._ever_connected and not self.connected:
            self._tally.count("reconnects")
            logger.warning(
                "tocsin bridge %s reconnected to the broker after %d failed attempt(s)",
                self.role,
                self._failures,
            )
        self.connected = self._ever_connected = True
        self._failures = 0

    def down(self, what: str, error: BaseException) -> None:
        self.connected = False
        self._failures += 1
        self._tally.failure(f"{self.role} {what}", error)
        level = logging.ERROR if self._failures == 1 else logging.DEBUG
        logger.log(
            level,
            "tocsin bridge %s could not %s (attempt %d): %s: %s; retrying",
            self.role,
            what,
            self._failures,
            type(error).__name__,
            error,
        )


class Backoff:
    """Waits between reconnection attempts: 50 ms doubling up to 2 s, with jitter so that
    many processes do not reconnect in step. ``reset()`` after a success."""

    FIRST = 0.05
    LONGEST = 2.0

    def __init__(self) -> None:
        self._delay = self.FIRST

    def next_delay(self) -> float:
        delay = self._delay * random.uniform(0.5, 1.0)
        self._delay = min(self._delay * 2, self.LONGEST)
        return delay

    def reset(self) -> None:
        self._delay = self.FIRST
