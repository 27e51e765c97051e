"""The map of who listens to what, for ``python -m tocsin receivers``.

It imports what it is told to (modules, packages with their signals modules, entry points),
finds the signals it can name (the catalogue, ``Signal`` objects at module level and as class
attributes in what was imported), and describes each signal's live connections as plain data,
which is then printed as text, JSON or a Mermaid flowchart.

A signal is found by scanning modules, because only a module attribute gives it a name a
reader can look up. One signal is often reachable under several names (a receiver module
does ``from shop.events import order_placed``); it is listed once, under the name most likely
to be where it is defined: see ``_preference``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from types import MethodType, ModuleType
from typing import Any, TypedDict

from tocsin import catalogue
from tocsin.discovery import autodiscover, load_entry_points
from tocsin.dispatcher import Connection, Signal


class ConnectionDescription(TypedDict):
    """One live connection as plain data, ready for ``json.dumps``."""

    receiver: str  # qualified name: module.qualname
    module: str | None  # the module the receiver says it belongs to
    file: str | None  # where it is defined, when that can be known
    line: int | None
    sender: str | None  # repr() of the sender; None for any sender
    weak: bool
    dispatch_uid: str | None  # repr() of the uid, or None
    is_async: bool


class SignalDescription(TypedDict):
    """One signal, by qualified name, with its live connections in call order."""

    signal: str
    connections: list[ConnectionDescription]


def import_targets(
    targets: Sequence[str], entry_points: bool
) -> tuple[list[ModuleType], list[str]]:
    """Import each target (a package also gets its signals modules, subpackages included)
    and, when asked, the ``tocsin.receivers`` entry points.

    Returns the modules to search for signals (the targets, their submodules, and every
    module first imported on the way) and one error line per target or entry point that
    failed. A failure does not stop the other targets.
    """
    before = set(sys.modules)
    errors: list[str] = []
    for target in targets:
        try:
            module = importlib.import_module(target)
            if hasattr(module, "__path__"):
                autodiscover(module, recursive=True)
        except (Exception, SystemExit) as error:  # a module may sys.exit() when unconfigured
            errors.append(f"cannot import {target!r}: {_one_line(error)}")
    if entry_points:
        try:
            load_entry_points()
        except (Exception, SystemExit) as error:
            errors.append(f"cannot load the tocsin.receivers entry points: {_one_line(error)}")
    prefixes = tuple(f"{target}." for target in targets)
    modules = [
        module
        for name, module in list(sys.modules.items())
        if isinstance(module, ModuleType)
        and (name not in before or name in targets or name.startswith(prefixes))
    ]
    return modules, errors


def _one_line(error: BaseException) -> str:
    """``Type: message``, with any line breaks of the message folded into spaces."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def find_signals(modules: Iterable[ModuleType]) -> list[tuple[str, Signal]]:
    """Every signal in the catalogue and in ``modules`` (at module level or as a class
    attribute), once each, with its qualified name; sorted by that name."""
    names: dict[int, list[tuple[str, ModuleType]]] = {}
    signals: dict[int, Signal] = {}
    for module in {id(module): module for module in modules}.values():
        for name, signal in _signals_in(module):
            signals[id(signal)] = signal
            names.setdefault(id(signal), []).append((name, module))
    for name, signal in catalogue.SIGNALS.items():
        # The catalogue is each builtin signal's home, whoever imports it.
        signals[id(signal)] = signal
        names[id(signal)] = [(f"tocsin.catalogue.{name}", catalogue)]
    found = [
        (min(names[key], key=lambda pair: _preference(signals[key], *pair))[0], signal)
        for key, signal in signals.items()
    ]
    return sorted(found, key=lambda pair: pair[0])


def _signals_in(module: ModuleType) -> Iterable[tuple[str, Signal]]:
    """(qualified name, signal) for the module's signals and its own classes' signals."""
    module_name = module.__name__
    try:
        attributes = list(vars(module).items())
    except TypeError:  # a module object with no __dict__
        return
    for attribute, value in attributes:
        if isinstance(value, Signal):
            yield f"{module_name}.{attribute}", value
        elif isinstance(value, type) and getattr(value, "__module__", None) == module_name:
            yield from _signals_of_class(value, f"{module_name}.{value.__qualname__}")


def _signals_of_class(cls: type, prefix: str) -> Iterable[tuple[str, Signal]]:
    for attribute, value in list(vars(cls).items()):
        if isinstance(value, Signal):
            yield f"{prefix}.{attribute}", value
        elif isinstance(value, type) and value.__qualname__ == f"{cls.__qualname__}.{attribute}":
            yield from _signals_of_class(value, f"{prefix}.{attribute}")  # a nested class


def _preference(signal: Signal, name: str, module: ModuleType) -> tuple[bool, bool, str]:
    """Sort key among the names of one signal: the first is where it is most likely defined.

    A module with receivers of the signal is more likely to have imported it than defined
    it, and so is a package (re-exporting it in ``__init__``); then the name decides.
    """
    listens = any(
        _module_of(connection.receiver) == module.__name__ for connection in signal.connections()
    )
    return listens, hasattr(module, "__path__"), name


def describe(signals: Iterable[tuple[str, Signal]], include_idle: bool) -> list[SignalDescription]:
    """Each signal with its live connections; signals nobody listens to only when
    ``include_idle``."""
    described: list[SignalDescription] = []
    for name, signal in signals:
        connections = [_describe_connection(c) for c in signal.connections()]
        if connections or include_idle:
            described.append({"signal": name, "connections": connections})
    return described


def _describe_connection(connection: Connection) -> ConnectionDescription:
    file, line = _source_of(connection.receiver)
    return {
        "receiver": _qualified_name(connection.receiver),
        "module": _module_of(connection.receiver),
        "file": file,
        "line": line,
        "sender": None if connection.sender is None else repr(connection.sender),
        "weak": connection.weak,
        "dispatch_uid": None if connection.dispatch_uid is None else repr(connection.dispatch_uid),
        "is_async": connection.is_async,
    }


def _definition(receiver: Callable[..., Any]) -> object:
    """What defines a receiver: the function behind a bound method or a partial, or the
    class of a callable object."""
    target: object = receiver
    while isinstance(target, MethodType | functools.partial):
        target = target.__func__ if isinstance(target, MethodType) else target.func
    if not hasattr(target, "__qualname__"):
        target = type(target)
    return target


def _qualified_name(receiver: Callable[..., Any]) -> str:
    target = _definition(receiver)
    qualname = getattr(target, "__qualname__", repr(target))
    module = getattr(target, "__module__", None)
    name = f"{module}.{qualname}" if module else str(qualname)
    if isinstance(receiver, functools.partial):
        return f"functools.partial({name})"
    if target is type(receiver):
        return f"{name} instance"
    return name


def _module_of(receiver: Callable[..., Any]) -> str | None:
    module = getattr(_definition(receiver), "__module__", None)
    return module if isinstance(module, str) else None


def _source_of(receiver: Callable[..., Any]) -> tuple[str | None, int | None]:
    """The file and first line of the receiver's definition (of the function a
    ``functools.wraps`` wrapper wraps, since the wrapper takes its name), if known."""
    target = _definition(receiver)
    if isinstance(target, type):
        # The method a callable object runs: it is where the receiver's code is.
        target = getattr(target, "__call__", target)  # noqa: B004
    with contextlib.suppress(ValueError):  # a __wrapped__ cycle: keep what we have
        target = inspect.unwrap(target)  # type: ignore[arg-type]
    code = getattr(target, "__code__", None)
    if code is None:
        return None, None
    return code.co_filename, code.co_firstlineno


# --- presenting the map ---------------------------------------------------------------------


def format_text(described: Sequence[SignalDescription]) -> str:
    """The map for a terminal: each signal, then one indented line per connection."""
    if not described:
        return "No receivers are connected to the signals found (--all lists them anyway).\n"
    lines: list[str] = []
    for signal in described:
        count = len(signal["connections"])
        plural = "receiver" if count == 1 else "receivers"
        lines.append(f"{signal['signal']}  ({count or 'no'} {plural})")
        for c in signal["connections"]:
            where = f"  {_display_path(c['file'])}:{c['line']}" if c["file"] else ""
            parts = [
                f"  {c['receiver']}{where}",
                f"sender={'any' if c['sender'] is None else c['sender']}",
                "weak" if c["weak"] else "strong",
            ]
            if c["dispatch_uid"] is not None:
                parts.append(f"dispatch_uid={c['dispatch_uid']}")
            parts.append("async" if c["is_async"] else "sync")
            lines.append("  ".join(parts))
    return "\n".join(lines) + "\n"


def _display_path(file: str) -> str:
    """A path relative to the current directory when it lies inside it: shorter to read."""
    try:
        relative = os.path.relpath(file)
    except ValueError:  # another drive, on Windows
        return file
    return file if relative.startswith(os.pardir) else relative


def format_mermaid(described: Sequence[SignalDescription]) -> str:
    """The map as a Mermaid flowchart: an edge from each signal to each of its receivers,
    the receivers grouped in one subgraph per module. Node ids are generated (``s1``,
    ``r1``, ``m1``) and every label is quoted and escaped, so no name can break the syntax."""
    lines = ["flowchart LR"]
    receiver_ids: dict[tuple[object, ...], str] = {}
    by_module: dict[str | None, list[tuple[str, str]]] = {}
    edges: list[str] = []
    for number, signal in enumerate(described, start=1):
        signal_id = f"s{number}"
        lines.append(f'    {signal_id}(["{_mermaid_label(signal["signal"])}"])')
        for c in signal["connections"]:
            key = (c["receiver"], c["module"], c["file"], c["line"])
            receiver_id = receiver_ids.get(key)
            if receiver_id is None:
                receiver_id = receiver_ids[key] = f"r{len(receiver_ids) + 1}"
                short = c["receiver"]
                if c["module"] and short.startswith(c["module"] + "."):
                    short = short[len(c["module"]) + 1 :]
                by_module.setdefault(c["module"], []).append((receiver_id, short))
            notes = [] if c["sender"] is None else [f"sender={c['sender']}"]
            notes += [] if c["weak"] else ["strong"]
            notes += [] if c["dispatch_uid"] is None else [f"dispatch_uid={c['dispatch_uid']}"]
            notes += ["async"] if c["is_async"] else []
            label = f'|"{_mermaid_label(", ".join(notes))}"|' if notes else ""
            edges.append(f"    {signal_id} -->{label} {receiver_id}")
    for number, (module, receivers) in enumerate(by_module.items(), start=1):
        indent = "    "
        if module is not None:
            lines.append(f'    subgraph m{number}["{_mermaid_label(module)}"]')
            indent = "        "
        for receiver_id, short in receivers:
            lines.append(f'{indent}{receiver_id}["{_mermaid_label(short)}"]')
        if module is not None:
            lines.append("    end")
    return "\n".join(lines + edges) + "\n"


# Characters that could end a quoted label, or be read as markup or as an entity code, written
# as Mermaid entity codes (#<decimal>;), which Mermaid turns back into the character.
_MERMAID_ESCAPES = {char: f"#{ord(char)};" for char in '#"<>&;|`'}


def _mermaid_label(text: str) -> str:
    escaped = "".join(_MERMAID_ESCAPES.get(char, char) for char in text)
    return " ".join(escaped.split())  # no newline may split a label
