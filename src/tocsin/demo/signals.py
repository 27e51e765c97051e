"""The demo's receivers: each describes the signal it heard, in one line, on ``heard``.

Importing this module connects them (with ``@receiver``): the demo does it with
``tocsin.autodiscover("tocsin.demo")`` at start-up, as a Django app's ``ready()`` imports its
``signals`` module. They hand their lines to a queue rather
than printing, because they run in the server's threads: the demo prints them in order.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Mapping
from typing import Any

from tocsin import Signal, catalogue, receiver

__all__ = ["heard"]

heard: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
"""(signal name, its description), for every signal the receivers heard, in order."""


def _show(value: object) -> str:
    if isinstance(value, Mapping) and "REQUEST_METHOD" in value:
        return f"<WSGI environ: {value['REQUEST_METHOD']} {value.get('PATH_INFO', '')}>"
    if isinstance(value, type):
        return value.__name__
    if hasattr(value, "in_transaction"):  # a sqlite3 connection
        return f"<{type(value).__name__} at {id(value):#x}>"
    return repr(value)


@receiver(
    [
        catalogue.request_started,
        catalogue.request_finished,
        catalogue.connection_created,
        catalogue.pre_save,
        catalogue.post_save,
        catalogue.pre_delete,
        catalogue.post_delete,
    ]
)
def describe(signal: Signal, sender: object, **arguments: Any) -> None:
    """Describe any of the signals above: its name, sender and arguments."""
    shown = "".join(f"  {name}={_show(value)}" for name, value in arguments.items())
    heard.put((signal.name or "", f"{signal.name:<22} sender={_show(sender)}{shown}"))


@receiver(catalogue.got_request_exception)
def describe_failure(signal: Signal, sender: object, request: object, **kwargs: Any) -> None:
    """Describe a failed request, with the exception being handled (as Django's test client
    and error reporters read it)."""
    error = sys.exc_info()[1]
    heard.put(
        (
            signal.name or "",
            f"{signal.name:<22} sender={sender}  request={_show(request)}  "
            f"(sys.exc_info(): {error!r})",
        )
    )
