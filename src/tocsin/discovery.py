"""Importing the modules that connect receivers: what ``AppConfig.ready()`` does in Django.

Receivers connect when the module defining them runs, so wiring an application means
importing each such module once, at start-up, before the first send. ``autodiscover`` imports
the ``signals`` module of each package it is given (of every subpackage too, on request);
``load_entry_points`` imports the modules, or calls the functions, that installed
distributions declare under an entry-point group, so plugins wire themselves in.

Both go through Python's import system, which already runs a module once per process (as
long as it stays in ``sys.modules``); what they add is telling "this package has no signals
module" apart from "its signals module failed" (the second always propagates), and a record
of the entry points already loaded, so that a callable one runs once however often its group
is loaded. Neither holds a lock while
importing or calling anything: imports take Python's own per-module locks.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
import threading
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["autodiscover", "load_entry_points"]

_lock = threading.Lock()

# Module names an autodiscover call is importing right now, so that of two threads racing for
# one module, only one reports it as imported.
_claimed: set[str] = set()

# Entry-point values loaded (or being loaded, with the thread doing it) in this process.
_entry_points_done: set[str] = set()
_entry_points_running: dict[str, tuple[int, threading.Event]] = {}


def autodiscover(
    *packages: str | ModuleType, module: str = "signals", recursive: bool = False
) -> list[str]:
    """Import ``<package>.<module>`` for each package that has such a submodule.

    ``packages`` are dotted names or module objects. A package without the submodule is
    skipped; a package that does not exist raises ``ModuleNotFoundError`` naming it; any
    error raised while the submodule runs (an ``ImportError`` inside it included) propagates
    unchanged. With ``recursive=True`` every subpackage, at any depth, is imported and
    searched too (except the ``<module>`` package itself, when it is one).

    Each submodule is imported once per process, however often this is called: one already
    imported (by an earlier call, or by an ``import`` statement) is not run again. Returns
    the names of the modules this call imported, in the order it imported them.
    """
    if not isinstance(module, str) or not module.isidentifier():
        raise ValueError(
            f"autodiscover(): module must be the name of a submodule, such as 'signals'; "
            f"got {module!r}"
        )
    imported: list[str] = []
    for package in packages:
        _discover(_package(package), module, recursive, imported)
    return imported


def _package(package: str | ModuleType) -> ModuleType:
    """The package ``autodiscover`` was given, imported; errors name it."""
    if isinstance(package, ModuleType):
        found = package
    elif isinstance(package, str):
        try:
            found = importlib.import_module(package)
        except ModuleNotFoundError as error:
            # Only when the package itself (or a parent) is missing: a module the package
            # imports being missing is the package's own error, and propagates unchanged.
            if error.name is None or not (package + ".").startswith(error.name + "."):
                raise
            raise ModuleNotFoundError(
                f"autodiscover(): there is no package named {package!r} "
                f"(no module named {error.name!r})",
                name=package,
            ) from error
    else:
        raise TypeError(
            f"autodiscover() takes package names or modules; got {package!r} "
            f"({type(package).__name__})"
        )
    if not hasattr(found, "__path__"):
        raise ValueError(
            f"autodiscover(): {found.__name__!r} is a module, not a package, so it has no "
            "submodules to import; pass the package that contains it"
        )
    return found


def _discover(package: ModuleType, module: str, recursive: bool, imported: list[str]) -> None:
    """Import ``package``'s submodule ``module``, then (when recursive) search each
    subpackage, depth first, in name order; append the names imported to ``imported``."""
    name = f"{package.__name__}.{module}"
    if _import_if_present(name):
        imported.append(name)
    if recursive:
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            if info.ispkg and info.name != name:
                _discover(importlib.import_module(info.name), module, True, imported)


def _import_if_present(name: str) -> bool:
    """Import the module ``name`` if it exists; return whether this call ran it.

    A module already in ``sys.modules`` is not run again (``import_module`` still waits for
    it if another thread is running it right now, so its receivers are connected by the
    time this returns).
    """
    # find_spec looks without running anything, so a missing module is told apart from a
    # module that fails with ImportError while it runs.
    if name not in sys.modules and importlib.util.find_spec(name) is None:
        return False
    with _lock:
        mine = name not in sys.modules and name not in _claimed
        if mine:
            _claimed.add(name)
    try:
        importlib.import_module(name)
    finally:
        if mine:
            with _lock:
                _claimed.discard(name)
    return mine


def load_entry_points(group: str = "tocsin.receivers") -> list[str]:
    """Load what installed distributions declare under the entry-point ``group``.

    An entry point names a module (``shop.signals``), which is imported, or a callable
    (``shop.hooks:connect_all``), which is called with no arguments. Each is loaded once per
    process: loading the group again loads only entry points not loaded before. A failing
    entry point raises ``ImportError`` naming the distribution, the entry point and the
    group, chained to the original error; the entry points before it stay loaded. Returns
    the values (``module`` or ``module:attribute``) loaded by this call, in the order the
    installed distributions list them.
    """
    if not isinstance(group, str) or not group:
        raise TypeError(
            f"load_entry_points() takes the entry-point group's name, a str such as "
            f"'tocsin.receivers'; got {group!r} ({type(group).__name__})"
        )
    from importlib.metadata import entry_points

    loaded: list[str] = []
    for entry_point in entry_points(group=group):
        if _load_once(entry_point):
            loaded.append(entry_point.value)
    return loaded


def _load_once(entry_point: EntryPoint) -> bool:
    """Load ``entry_point`` unless it was loaded already; return whether this call loaded it.

    A thread that finds another one loading the same value waits for it to finish. The
    thread loading it returns at once if it meets it again (a callable that loads its own
    group): waiting for itself would never end.
    """
    value = entry_point.value
    me = threading.get_ident()
    while True:
        with _lock:
            if value in _entry_points_done:
                return False
            running = _entry_points_running.get(value)
            if running is None:
                finished = threading.Event()
                _entry_points_running[value] = (me, finished)
                break
        owner, event = running
        if owner == me:
            return False
        event.wait()  # then look again: the other thread may have failed
    try:
        _load(entry_point)
    except BaseException:
        with _lock:
            del _entry_points_running[value]
        finished.set()
        raise
    with _lock:
        del _entry_points_running[value]
        _entry_points_done.add(value)
    finished.set()
    return True


def _load(entry_point: EntryPoint) -> None:
    """Import the module an entry point names, or call the callable it names."""
    try:
        target = entry_point.load()
        if not isinstance(target, ModuleType):
            if not callable(target):
                raise TypeError(
                    f"{entry_point.value} is neither a module nor a callable, but "
                    f"{type(target).__name__} {target!r}"
                )
            target()
    except Exception as error:
        distribution = entry_point.dist.name if entry_point.dist is not None else "unknown"
        raise ImportError(
            f"entry point {entry_point.name!r} = {entry_point.value!r} of distribution "
            f"{distribution!r} (group {entry_point.group!r}) failed: "
            f"{type(error).__name__}: {error}"
        ) from error
