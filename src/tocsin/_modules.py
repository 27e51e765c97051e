"""Identifies the module a receiver really comes from, to catch a module imported twice.

A module file imported under two names (``shop.signals``, and ``signals`` through a
``sys.path`` entry pointing inside the package; or a script run as ``__main__`` that is also
imported by its name) runs twice. Each run defines its own copies of the receivers and
connects them, so every send calls each receiver twice: connect cannot see the problem,
because the two copies are different function objects.

A function's origin is read from two facts CPython records when it is created: the file its
code was compiled from (``__code__.co_filename``) and the namespace it was defined in
(``__globals__``, whose ``__name__`` and ``__file__`` are those of the defining module). Both
are about where the function was *defined*, which is what matters here:

- every function made by one ``def`` (closures from a factory) shares one origin;
- a ``functools.wraps`` wrapper copies ``__module__`` from the function it wraps, but its
  globals and code are those of the decorator's module, so ``__module__`` alone decides
  nothing: it only lets the common case skip reading the globals;
- a function whose code does not come from its module's own file (``exec``/``compile`` with
  ``"<string>"``, doctests, code run in a namespace without ``__file__``) has no origin;
- ``importlib.reload`` runs the file again under the same name: the same origin.

The first receiver seen from a file records the module name it was defined under. A receiver
defined by the same file under another name, while a module of that first name is still
imported from the same file, is the duplicate: ``check_duplicate`` warns, once per pair of
names and file. The common case (a function whose module's file is known under the name it
says) costs one dict lookup and allocates nothing; nothing is kept per connection, and one
short entry per source file.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FunctionType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tocsin.dispatcher import Signal


class DuplicateReceiverWarning(UserWarning):
    """A receiver comes from a module file that is imported a second time under another name.

    Both copies of the module connect their receivers, so each send would call them twice.
    Import the module under one name only, or connect its receivers with a ``dispatch_uid``.
    Turn the warning into an error (``warnings.simplefilter("error", DuplicateReceiverWarning)``)
    to make such a connection fail instead: the check runs before anything is connected.
    """

    __module__ = "tocsin"


# co_filename -> the module name its receivers were first seen defined under. Read on every
# connect of a function, written only on a miss: once per file in a healthy program.
_module_of_file: dict[str, str] = {}

_recorded_module = _module_of_file.get  # bound once: this is the whole of the fast path

# The same, keyed by the file's real path: two spellings of one file (a symlink, "a/../b")
# meet here. Read and written only on a miss.
_module_of_path: dict[str, str] = {}

# (file, first name, second name) for each duplicate already warned about.
_reported: set[tuple[str, str, str]] = set()


def check_duplicate(receiver: object, signal: Signal) -> None:
    """Warn (``DuplicateReceiverWarning``) when ``receiver``, being connected to ``signal``,
    was defined by a module file that is also imported under another name; return None.

    Only plain functions are checked: they are what ``@receiver`` decorates in a module.
    Called by ``Signal.connect`` outside its lock, since warning filters may run any code.
    """
    # __module__ is the cheapest name to read, and the right one for all but wrappers made
    # by functools.wraps, which copy it from the function they wrap: those take the slow
    # path, which reads the defining module's name from the globals, and find nothing wrong.
    if (
        type(receiver) is FunctionType
        and _recorded_module(receiver.__code__.co_filename) is not receiver.__module__
    ):
        _examine(receiver, signal)


def _examine(receiver: FunctionType, signal: Signal) -> None:
    """The slow path of ``check_duplicate``: a file seen for the first time, or under a name
    other than the one first recorded for it."""
    code = receiver.__code__
    file = code.co_filename
    name = receiver.__globals__.get("__name__")
    if not isinstance(name, str) or receiver.__globals__.get("__file__") != file:
        return  # not defined by a module's own source file: exec'd code, a doctest...
    recorded = _module_of_file.get(file)
    if recorded is not None and (file, recorded, name) in _reported:
        return
    if recorded != name:
        path = os.path.normcase(os.path.realpath(file))
        first = _module_of_path.setdefault(path, name)
        if first != name:
            if (file, first, name) in _reported:
                return
            if _imported_from(first, path, receiver):
                warnings.warn_explicit(
                    DuplicateReceiverWarning(
                        f"{name}.{receiver.__qualname__} connected to {signal!r} comes from "
                        f"{file}, which is imported twice: as module {first!r} and as module "
                        f"{name!r}. Each copy connects its own receivers, so they would run "
                        "twice. Import the module under one name only (check sys.path and how "
                        "the program is started), or connect its receivers with a dispatch_uid."
                    ),
                    DuplicateReceiverWarning,
                    file,
                    code.co_firstlineno,
                    module=name,
                )
                # Recorded only once the warning was shown: when the filters turn it into an
                # error, every connection from the second copy fails, not just the first.
                _reported.add((file, first, name))
                return
            # The first copy is gone (unloaded, or its name now means another file): this
            # name owns the file from now on.
            _module_of_path[path] = name
    # Also when the name is equal but another string object (the module was imported again
    # after leaving sys.modules): the fast path compares by identity.
    _module_of_file[file] = name


def _imported_from(module_name: str, path: str, receiver: FunctionType) -> bool:
    """Whether ``module_name`` is imported now, from the file at ``path``, as a module other
    than the one ``receiver`` was defined in."""
    module = sys.modules.get(module_name)
    if module is None or vars(module) is receiver.__globals__:
        return False
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and os.path.normcase(os.path.realpath(file)) == path
