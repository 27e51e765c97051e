"""Receivers and senders: how each is held (weakly or strongly), identified, and described.

A connection is one receiver connected to a signal, for any sender or for one. Each is one
object, built whole by ``make_connection``; the weak kinds *are* the weak reference to their
receiver (a ``weakref.ref`` subclass), so a connection costs about one allocation and the
reference's own callback says which connection died. Calling a connection returns its
receiver, or None once it is gone, so the send path treats every kind alike.

What varies between connections (weak or strong, sync or async, for any sender or for one)
is carried by the connection's class rather than by a field: every field costs eight bytes
on each of possibly many thousands of connections, and the per-connection memory of a weak
connection is budgeted (see benchmarks/).

Identities never run user code: receivers are identified by ``id()`` (while they live, an
``id`` is theirs alone), senders by ``id()`` or, for the plain value types, by value with
their type alongside, and a dispatch_uid by a ``UidToken`` that stands for it (see
``tocsin._ledger``). That is what lets the signal's lock be held without calling anyone's
``__eq__`` or ``__hash__``.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import reprlib
import weakref
from collections.abc import Callable, Hashable
from itertools import repeat
from types import CodeType, FunctionType, MethodType
from typing import Any, Protocol

Receiver = Callable[..., Any]
Getter = Callable[[], Receiver | None]

# Connection order across all signals: each connection takes the next number when it is made.
# next() on a count is one C call, atomic under the GIL, so no lock is needed to take one.
next_seq = itertools.count(1).__next__


class ConnectionEntry(Protocol):
    """What every connection offers the ledger and the send path."""

    ident: Hashable  # its key among the connections of its container (see tocsin._ledger)
    seq: int  # its place in connection order
    label: object  # what to call it if it dies unsent; None when not watched
    group: Any  # the ledger's Group of its sender; None for a connection for any sender
    weak: bool
    is_async: bool
    per_sender: bool

    def __call__(self) -> Receiver | None: ...

    @property
    def getter(self) -> Getter: ...


# -- identities -----------------------------------------------------------------------------

_METHOD = object()


def receiver_identity(receiver: Receiver) -> Hashable:
    """The key of a receiver among the connections of one sender (or of any sender).

    A bound method is keyed by ``(_METHOD, instance id, function id)``: ``obj.method`` builds
    a new method object on every access, so its own identity would never match twice.
    Everything else is keyed by its ``id()``, which it holds alone while it lives.
    """
    if isinstance(receiver, MethodType):
        return (_METHOD, id(receiver.__self__), id(receiver.__func__))
    return id(receiver)


# Senders of these exact types are matched by value: "auth" built at run time must reach the
# receivers connected for the literal "auth". Their subclasses (enums, say) keep identity.
_BY_VALUE = (str, bytes, int, bool)


def sender_key(sender: object) -> Hashable:
    """The key under which connections for ``sender`` are filed.

    A ``str`` keys by itself; ``bytes``, ``int`` and ``bool`` by ``(type, value)``, so that
    ``True`` and ``1`` stay apart, no number can collide with an ``id()``, and a ``str`` is
    never compared with ``bytes`` (which ``python -bb`` turns into an error); everything else
    by ``id()``. An ``id()`` can be reused after its object dies, which is why whoever looks
    a sender up by it also checks a guard that proves the object is still the same.
    """
    cls = type(sender)
    if cls is str:
        return sender
    if cls is int or cls is bool or cls is bytes:
        return (cls, sender)
    return id(sender)


def held_by_value(sender: object) -> bool:
    """Whether ``sender`` is matched by value (and so needs no identity guard)."""
    return type(sender) in _BY_VALUE


def same_uid(first: object, second: object) -> bool:
    """Whether two dispatch_uids are the same: equal, except that ``str`` and ``bytes`` never
    are (comparing them is an error under ``python -bb``). Runs the uids' ``__eq__``."""
    if first is second:
        return True
    if isinstance(first, str | bytes) or isinstance(second, str | bytes):
        return type(first) is type(second) and first == second
    return bool(first == second)


def uid_hash(uid: Hashable) -> int:
    """The hash a dispatch_uid is bucketed by; runs the uid's ``__hash__``.

    ``str`` and ``bytes`` hash alike, so the type is mixed in to keep "a" and b"a" apart."""
    if isinstance(uid, str | bytes):
        return hash((type(uid), uid))
    return hash(uid)


class UidToken:
    """Stands for one dispatch_uid of one signal.

    Keys built from a token hash and compare by the token's identity, so the signal's lock
    never runs a uid's ``__hash__`` or ``__eq__``. ``users`` counts the connections filed
    under it; at zero the ledger drops the token.
    """

    __slots__ = ("hashed", "uid", "users")

    def __init__(self, uid: Hashable, hashed: int) -> None:
        self.uid = uid
        self.hashed = hashed  # uid_hash(uid), kept so the lock never calls __hash__ again
        self.users = 0

    def __repr__(self) -> str:
        return f"<dispatch_uid {safe_repr(self.uid)}>"


# -- descriptions ----------------------------------------------------------------------------

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


def safe_repr(value: object) -> str:
    """``repr(value)``, shortened, or a plain stand-in if its ``__repr__`` fails.

    Used in every message tocsin writes: a failing ``__repr__`` must never hide the error
    being reported, nor stop a robust send.
    """
    try:
        return _short.repr(value)
    except Exception:
        return f"<{type(value).__qualname__} object at {id(value):#x}>"


def safe_str(value: object) -> str:
    """``str(value)``, or its safe repr if its ``__str__`` fails."""
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


def describe_receiver(receiver: object) -> str:
    """A readable name for a receiver, for messages; never raises.

    Functions and methods by ``module.qualname``, partials by what they wrap, anything else
    by its class and its (safe) repr.
    """
    try:
        if isinstance(receiver, functools.partial):
            return f"functools.partial({describe_receiver(receiver.func)})"
        qualname = getattr(receiver, "__qualname__", None)
        if isinstance(qualname, str):
            module = getattr(receiver, "__module__", None)
            return f"{module}.{qualname}" if isinstance(module, str) else qualname
    except Exception:
        pass
    return f"{type(receiver).__qualname__} instance {safe_repr(receiver)}"


def label_of(receiver: Receiver) -> object:
    """What a watched receiver is called if it dies unsent: for a function, its code object
    (it names the function and where it was defined, without building a string)."""
    if isinstance(receiver, FunctionType):
        return receiver.__code__
    return describe_receiver(receiver)


def describe_label(label: object) -> str:
    """The text of a label made by ``label_of``."""
    if isinstance(label, CodeType):
        return f"{label.co_qualname} ({label.co_filename}:{label.co_firstlineno})"
    return str(label)


# -- receiver checks -------------------------------------------------------------------------


def accepts_keywords(receiver: Receiver) -> bool:
    """Whether ``receiver`` takes ``**kwargs``; cheap for functions and methods.

    Reading the code flags avoids ``inspect.signature``, which costs tens of microseconds per
    connect. Anything we cannot see through is given the benefit of the doubt.
    """
    target: object = receiver
    while True:
        if isinstance(target, MethodType):
            target = target.__func__
        elif isinstance(target, functools.partial):
            target = target.func
        else:
            break
    if isinstance(target, FunctionType):
        return bool(target.__code__.co_flags & inspect.CO_VARKEYWORDS)
    # The receiver passed callable() already, so its type has a __call__.
    call = type(target).__call__
    if isinstance(call, FunctionType) and not isinstance(target, type):
        return bool(call.__code__.co_flags & inspect.CO_VARKEYWORDS)
    try:
        parameters = inspect.signature(target).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def is_watched(receiver: Receiver) -> bool:
    """Whether a weak receiver that dies before any send deserves a warning.

    Only plain functions and partials: a callable object or a bound method dying with its
    owner is the ordinary way for a receiver to go.
    """
    return isinstance(receiver, FunctionType | functools.partial)


# -- connections -----------------------------------------------------------------------------


class _WeakConnection(weakref.ref):  # type: ignore[type-arg]
    """A connection holding its receiver (a function, partial or callable object) weakly.

    ``seq`` orders it among the signal's connections; it also tells whether the signal was
    sent since it was made (see ``Ledger.sent_at``). ``label`` is set for watched
    receivers, whose death before any send is reported (``ReceiverCollectedWarning``).
    """

    __slots__ = ("ident", "label", "seq")

    ident: Hashable
    label: object
    seq: int

    weak = True
    is_async = False
    per_sender = False
    group: Any = None

    @property
    def getter(self) -> Getter:
        # The C-level call of weakref.ref is the fastest way to reach the receiver.
        return self


class _WeakMethodConnection(_WeakConnection):
    """A bound method held weakly through its instance: it lives as long as the instance.

    The function is held strongly: it belongs to the instance's class, which the instance
    keeps alive anyway, and a weak reference to it would add a second way to die.
    """

    __slots__ = ("func",)

    func: Callable[..., Any]

    # weakref.ref.__init__ only checks its arguments, so the inherited one serves.

    def __call__(self) -> Receiver | None:
        instance = weakref.ref.__call__(self)
        return None if instance is None else MethodType(self.func, instance)

    @property
    def getter(self) -> Getter:
        return self


class _StrongConnection:
    """A connection made with ``weak=False``: it keeps its receiver alive until removed."""

    __slots__ = ("getter", "ident", "receiver", "seq")

    ident: Hashable
    seq: int
    getter: Getter

    weak = False
    is_async = False
    per_sender = False
    label = None
    group: Any = None

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        # repeat(x).__next__ is a C-level callable returning x: as fast to call in the send
        # loop as a weak reference, where a Python __call__ would cost a frame per receiver.
        self.getter = repeat(receiver).__next__

    def __call__(self) -> Receiver:
        return self.receiver


def _variant(base: type, *, is_async: bool, per_sender: bool) -> type:
    """A subclass of ``base`` for async receivers and/or one sender (which adds ``group``)."""
    if not (is_async or per_sender):
        return base
    name = base.__name__ + ("Async" if is_async else "") + ("ForSender" if per_sender else "")
    namespace: dict[str, object] = {
        "__slots__": ("group",) if per_sender else (),
        "is_async": is_async,
        "per_sender": per_sender,
        "__module__": __name__,
    }
    return type(name, (base,), namespace)


_CLASSES: dict[tuple[str, bool, bool], type] = {
    (kind, is_async, per_sender): _variant(base, is_async=is_async, per_sender=per_sender)
    for kind, base in (
        ("weak", _WeakConnection),
        ("method", _WeakMethodConnection),
        ("strong", _StrongConnection),
    )
    for is_async in (False, True)
    for per_sender in (False, True)
}


def make_connection(
    receiver: Receiver,
    *,
    weak: bool,
    is_async: bool,
    per_sender: bool,
    on_death: Callable[[Any], None],
) -> ConnectionEntry:
    """Build a connection whole, but for ``ident`` (the ledger files it) and, for one sender,
    ``group`` (the ledger attaches it).

    Raises TypeError if ``weak`` and the receiver (or a bound method's instance) cannot be
    weakly referenced; the caller turns that into a message naming the signal.
    """
    connection: Any
    if not weak:
        connection = _CLASSES["strong", is_async, per_sender](receiver)
        connection.seq = next_seq()
        return connection  # type: ignore[no-any-return]
    if isinstance(receiver, MethodType):
        method_class = _CLASSES["method", is_async, per_sender]
        connection = weakref.ref.__new__(method_class, receiver.__self__, on_death)
        connection.func = receiver.__func__
    else:
        connection = weakref.ref.__new__(_CLASSES["weak", is_async, per_sender], receiver, on_death)
    connection.label = label_of(receiver) if is_watched(receiver) else None
    connection.seq = next_seq()
    return connection  # type: ignore[no-any-return]


# -- senders ----------------------------------------------------------------------------------


class SenderRef(weakref.ref):  # type: ignore[type-arg]
    """A weak reference to the sender of a group of connections; ``key`` names the group."""

    __slots__ = ("key",)

    key: Hashable


def hold_sender(
    sender: object, key: Hashable, on_death: Callable[[Any], None]
) -> Callable[[], object]:
    """How a group of connections holds its sender, as a callable returning it: a weak
    reference (a ``SenderRef``: ``on_death`` fires when the sender dies) when it can be, else a
    strong one, for values and for objects that cannot be weakly referenced."""
    if type(sender) not in _BY_VALUE:
        try:
            ref = SenderRef(sender, on_death)
        except TypeError:
            pass
        else:
            ref.key = key
            return ref
    # repeat(x).__next__ is a C-level callable returning x: a send checking the guard of a
    # route pays no Python frame for it.
    return repeat(sender).__next__
