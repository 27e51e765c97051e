"""Send Django's model signals from any persistence code: an ORM, raw sqlite3, plain files.

Each helper sends the signals of one operation with the arguments Django sends, in Django's
order, so that receivers written for Django's models work unchanged:

- ``saving``: a context manager around a save; ``pre_save`` before the block, ``post_save``
  after it.
- ``deleting``: a context manager around a delete; ``pre_delete`` and ``post_delete``.
- ``changing_m2m``: a context manager around a change to a many-to-many relation;
  ``m2m_changed`` with the ``pre_`` action before and the ``post_`` action after.
- ``model_signals``: a class decorator; ``class_prepared`` when the class is decorated and
  ``pre_init``/``post_init`` around every ``__init__``, dataclasses included.

A ``post_`` signal only follows a block that finished: when the block raises, the exception
propagates and no ``post_`` signal is sent, as when Django's save or delete fails. The sender
is the instance's class unless one is given.

The context managers work with ``with`` (sending with ``send``) and with ``async with``
(sending with ``asend``, so a coroutine that saves never blocks its event loop on the
receivers). Given ``defer=batch`` (a batch from ``tocsin.on_commit()`` or an integration's
``on_commit``), the ``post_`` signal is collected in the batch instead of sent, and goes out
when the batch commits; the ``pre_`` signal is always sent at once, since it must run before
the work it announces.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Iterable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

from tocsin import catalogue
from tocsin.commit import Batch
from tocsin.dispatcher import Signal

__all__ = ["DEFAULT_DB_ALIAS", "M2MChange", "changing_m2m", "deleting", "model_signals", "saving"]

DEFAULT_DB_ALIAS: Final = "default"

M2MChange = Literal["add", "remove", "clear"]
_M2M_ACTIONS: Final[dict[str, tuple[str, str]]] = {
    "add": (catalogue.PRE_ADD, catalogue.POST_ADD),
    "remove": (catalogue.PRE_REMOVE, catalogue.POST_REMOVE),
    "clear": (catalogue.PRE_CLEAR, catalogue.POST_CLEAR),
}

ClassT = TypeVar("ClassT", bound=type)


class _Around:
    """Send one signal when a block starts and another when it finishes without an exception.

    Works as ``with`` (``send``) and as ``async with`` (``asend``), once. The second send
    goes into ``defer`` instead, when a batch is given.
    """

    __slots__ = ("_after", "_before", "_defer", "_used")

    def __init__(
        self,
        before: tuple[Signal, object, dict[str, Any]],
        after: tuple[Signal, object, dict[str, Any]],
        defer: Batch | None,
    ) -> None:
        self._before = before
        self._after = after
        self._defer = defer
        self._used = False

    def _start(self) -> tuple[Signal, object, dict[str, Any]]:
        if self._used:
            signal, _, _ = self._before
            raise RuntimeError(
                f"this {signal.name} block was already entered: call the helper again for "
                "each operation"
            )
        self._used = True
        return self._before

    def __enter__(self) -> None:
        signal, sender, named = self._start()
        signal.send(sender, **named)

    def _finish(self, failed: bool) -> tuple[Signal, object, dict[str, Any]] | None:
        """The ``post_`` send to make now: none when the block failed, none when it is handed
        to the batch given as ``defer``."""
        if failed:
            return None
        if self._defer is not None:
            signal, sender, named = self._after
            self._defer.send(signal, sender, **named)
            return None
        return self._after

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        after = self._finish(exc_type is not None)
        if after is not None:
            signal, sender, named = after
            signal.send(sender, **named)

    async def __aenter__(self) -> None:
        signal, sender, named = self._start()
        await signal.asend(sender, **named)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        after = self._finish(exc_type is not None)
        if after is not None:
            signal, sender, named = after
            await signal.asend(sender, **named)


def _deferring_to(defer: object, helper: str) -> Batch | None:
    """Check ``defer=`` when the helper is called, before anything is sent."""
    if defer is None:
        return None
    if not isinstance(defer, Batch):
        raise TypeError(
            f"{helper}(defer=...) takes a batch from tocsin.on_commit(); got {defer!r} "
            f"({type(defer).__name__})"
        )
    if not defer.is_open:
        raise RuntimeError(
            f"{helper}(defer={defer!r}): the batch is not open; call {helper}() inside its "
            "with block"
        )
    return defer


def saving(
    instance: object,
    *,
    created: bool,
    sender: object = None,
    raw: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    update_fields: Iterable[str] | None = None,
    defer: Batch | None = None,
) -> _Around:
    """Send ``pre_save`` on entry and ``post_save`` when the block finishes.

    ``created`` tells ``post_save`` receivers whether the block inserted a new record (True)
    or updated an existing one (False). ``sender`` defaults to ``type(instance)``; ``raw``
    is True when the object is stored exactly as given (loading a dump or a fixture);
    ``update_fields`` names the fields written when only some are, and reaches receivers as
    a frozenset, as in Django. If the block raises, ``post_save`` is not sent. With
    ``defer=batch``, ``post_save`` is collected in the batch. Returns the context manager,
    for ``with`` or ``async with``.
    """
    batch = _deferring_to(defer, "saving")
    fields = None if update_fields is None else frozenset(update_fields)
    arguments = {"instance": instance, "raw": raw, "using": using, "update_fields": fields}
    model = type(instance) if sender is None else sender
    return _Around(
        (catalogue.pre_save, model, arguments),
        (catalogue.post_save, model, {"created": created, **arguments}),
        batch,
    )


def deleting(
    instance: object,
    *,
    sender: object = None,
    using: str = DEFAULT_DB_ALIAS,
    origin: object = None,
    defer: Batch | None = None,
) -> _Around:
    """Send ``pre_delete`` on entry and ``post_delete`` when the block finishes.

    ``origin`` is what the deletion started from: the instance itself (the default) or the
    query, collection or parent object whose deletion took this instance with it.
    ``sender`` defaults to ``type(instance)``. If the block raises, ``post_delete`` is not
    sent. With ``defer=batch``, ``post_delete`` is collected in the batch. Returns the
    context manager, for ``with`` or ``async with``.
    """
    batch = _deferring_to(defer, "deleting")
    arguments = {
        "instance": instance,
        "using": using,
        "origin": instance if origin is None else origin,
    }
    model = type(instance) if sender is None else sender
    return _Around(
        (catalogue.pre_delete, model, arguments), (catalogue.post_delete, model, arguments), batch
    )


def _pk_set_for(change: str, pk_set: Iterable[Hashable] | None) -> set[Hashable] | None:
    if change not in _M2M_ACTIONS:
        raise ValueError(
            f"changing_m2m() got change={change!r}; use one of: {', '.join(_M2M_ACTIONS)}"
        )
    if change == "clear":
        if pk_set is not None:
            raise ValueError("changing_m2m(change='clear') takes no pk_set: a clear has none")
        return None
    if pk_set is None:
        raise ValueError(f"changing_m2m(change={change!r}) needs pk_set, the keys concerned")
    return set(pk_set)


def changing_m2m(
    instance: object,
    change: M2MChange,
    *,
    model: type,
    pk_set: Iterable[Hashable] | None = None,
    sender: object = None,
    reverse: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    raw: bool = False,
    defer: Batch | None = None,
) -> _Around:
    """Send ``m2m_changed`` before and after a change to a many-to-many relation.

    ``change`` is "add", "remove" or "clear"; receivers get ``pre_<change>`` on entry and
    ``post_<change>`` when the block finishes (not at all if it raises). ``model`` is the
    class of the objects linked or unlinked, ``pk_set`` their keys (required for add and
    remove, passed on as a set; omitted for clear, which sends None), and ``reverse`` is
    True when the change is made from the side that does not declare the relation.

    Django's sender is the relation's intermediate ("through") model; pass your link
    table's class or name as ``sender`` to match. Without one, the sender is
    ``type(instance)``. With ``defer=batch``, the ``post_`` send is collected in the batch.
    Returns the context manager, for ``with`` or ``async with``.
    """
    keys = _pk_set_for(change, pk_set)
    batch = _deferring_to(defer, "changing_m2m")
    before, after = _M2M_ACTIONS[change]
    arguments = {
        "instance": instance,
        "reverse": reverse,
        "model": model,
        "pk_set": keys,
        "using": using,
        "raw": raw,
    }
    through = type(instance) if sender is None else sender
    return _Around(
        (catalogue.m2m_changed, through, {"action": before, **arguments}),
        (catalogue.m2m_changed, through, {"action": after, **arguments}),
        batch,
    )


# The ids of the objects whose signalling __init__ is running in this context. A decorated
# subclass whose __init__ calls a decorated base's __init__ must send pre_init and post_init
# once, from the outermost call, as Django does for a model subclass.
_initialising: ContextVar[frozenset[int]] = ContextVar(
    "tocsin_emit_initialising", default=frozenset()
)


def _signalling_init(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``init`` so that constructing an object sends ``pre_init`` and ``post_init``."""

    @functools.wraps(init)
    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        under_way = _initialising.get()
        if id(self) in under_way:
            init(self, *args, **kwargs)
            return
        model = type(self)
        catalogue.pre_init.send(model, args=args, kwargs=kwargs)
        token = _initialising.set(under_way | {id(self)})
        try:
            init(self, *args, **kwargs)
        finally:
            _initialising.reset(token)
        catalogue.post_init.send(model, instance=self)

    return __init__


def model_signals(cls: ClassT) -> ClassT:
    """Make a class send Django's model class signals; use it as a class decorator.

    Decorating sends ``class_prepared`` with the class as sender. Afterwards every
    construction sends ``pre_init`` (with the positional ``args`` as a tuple and the
    ``kwargs`` as a dict) before ``__init__`` runs and ``post_init`` (with the
    ``instance``) after it returns; the sender is the class of the object being built,
    so undecorated subclasses that keep the inherited ``__init__`` send too. If
    ``__init__`` raises, ``post_init`` is not sent.

    On a dataclass, put ``@model_signals`` above ``@dataclass`` so that it wraps the
    ``__init__`` the dataclass generates.
    """
    if not isinstance(cls, type):
        raise TypeError(
            f"model_signals decorates a class; got {cls!r} ({type(cls).__name__}). Put "
            "@model_signals on the class statement"
        )
    cls.__init__ = _signalling_init(cls.__init__)  # type: ignore[misc]
    catalogue.class_prepared.send(cls)
    return cls
