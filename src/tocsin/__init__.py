"""tocsin: Django's signals for any Python program, with no dependency.

The public names live here; everything else in the package is an implementation detail.
"""

from tocsin._asyncio import set_async_to_sync, set_sync_to_async
from tocsin._ledger import ReceiverCollectedWarning
from tocsin._modules import DuplicateReceiverWarning
from tocsin._registry import set_strict
from tocsin.arguments import Argument
from tocsin.commit import on_commit
from tocsin.discovery import autodiscover, load_entry_points
from tocsin.dispatcher import Connection, Signal, receiver

__version__ = "0.1.0"

__all__ = [
    "Argument",
    "Connection",
    "DuplicateReceiverWarning",
    "ReceiverCollectedWarning",
    "Signal",
    "__version__",
    "autodiscover",
    "load_entry_points",
    "on_commit",
    "receiver",
    "set_async_to_sync",
    "set_strict",
    "set_sync_to_async",
]
