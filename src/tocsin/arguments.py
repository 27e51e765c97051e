"""The arguments a signal declares it is sent with, and the check strict mode makes.

A signal may declare its arguments (``Signal(arguments=["order", "total"])``), for its
documentation and so that strict mode can refuse a send that does not fit: an unknown name,
with a "did you mean" hint for a near miss, or a missing required one. Declaring changes
nothing else: receivers get what the sender passed.

The check judges the names of a send, not its values. A signal's first send compiles a send
function for the names it was sent with (see ``tocsin._sendcode``) and checks them then, once;
in strict mode, later sends with exactly those names are not checked again, and a send with
other names is checked every time. So strict mode costs nothing on a signal's usual send.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tocsin._references import safe_repr

__all__ = ["Argument", "check_declared", "declare"]


@dataclass(frozen=True, slots=True)
class Argument:
    """One argument a signal declares it is sent with: its name, a one-line description,
    and whether a send may leave it out."""

    name: str
    doc: str = ""
    optional: bool = False


def declare(arguments: object, signal_name: str | None) -> tuple[Argument, ...] | None:
    """Turn what ``Signal(arguments=...)`` was given into a tuple of ``Argument``.

    Accepts a list of names and/or ``Argument`` objects, or a mapping of name to description;
    None means "not declared". Raises TypeError or ValueError naming the signal and the
    offending item: not an identifier, ``signal`` or ``sender`` (every receiver gets
    those already), or a name declared twice.
    """
    if arguments is None:
        return None
    where = f"Signal {signal_name!r}"
    if isinstance(arguments, Mapping):
        items: list[object] = [Argument(name, doc) for name, doc in arguments.items()]
    elif isinstance(arguments, Iterable) and not isinstance(arguments, str | bytes):
        items = list(arguments)
    else:
        raise TypeError(
            f"arguments= of {where} must be a list of names or Argument objects, or a mapping "
            f"of name to description; got {safe_repr(arguments)}"
        )
    specs: list[Argument] = []
    for item in items:
        spec = Argument(item) if isinstance(item, str) else item
        if not isinstance(spec, Argument):
            raise TypeError(
                f"{where} declares {safe_repr(item)} ({type(item).__name__}); declare each "
                "argument as a name (str) or an Argument"
            )
        name = spec.name
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(
                f"{where} declares an argument named {safe_repr(name)}; an argument name must "
                "be a str that is a Python identifier"
            )
        if name in ("signal", "sender"):
            raise ValueError(
                f"{where} declares {name!r}, which every receiver already gets; declare only "
                "the other arguments"
            )
        if any(s.name == name for s in specs):
            raise ValueError(f"{where} declares the argument {name!r} twice")
        specs.append(spec)
    return tuple(specs)


def check_declared(
    signal: object, specs: tuple[Argument, ...], named: Mapping[str, Any], method: str
) -> None:
    """Raise TypeError unless ``named`` fits ``specs``; the message names ``signal``,
    ``method`` and the argument, and lists what is declared."""
    declared = {spec.name for spec in specs}
    for name in named:
        if name not in declared:
            hint = difflib.get_close_matches(name, declared, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise TypeError(
                f"{signal!r}.{method}() got an unexpected argument {name!r}{did_you_mean}; "
                f"it declares: {_listing(specs) or 'no arguments'}"
            )
    for spec in specs:
        if not spec.optional and spec.name not in named:
            raise TypeError(
                f"{signal!r}.{method}() is missing the required argument {spec.name!r}; "
                f"it declares: {_listing(specs)}"
            )


def _listing(specs: tuple[Argument, ...]) -> str:
    return ", ".join(f"{spec.name} (optional)" if spec.optional else spec.name for spec in specs)
