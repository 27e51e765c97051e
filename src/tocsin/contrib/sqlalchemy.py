"""SQLAlchemy 2.x as a source of the catalogue's signals (the ``tocsin[sqlalchemy]`` extra).

``install(target, using="default")`` turns SQLAlchemy's events into Django's signals:

- for a mapped class, a declarative base (and so every class mapped on it, now or later), a
  ``Session`` (class or instance) or a ``sessionmaker``: the ORM's flush sends ``pre_save``
  and ``post_save`` around each INSERT and UPDATE (``created`` True for an insert, False for
  an update, ``update_fields`` None, ``raw`` False, ``using`` the given alias) and
  ``pre_delete`` and ``post_delete`` around each DELETE (``origin`` the instance). The
  sender is the mapped class. An object flushed with no change to its own columns (only a
  collection of it changed) writes no row and sends nothing;
- for an ``Engine``: ``connection_created(connection=<the DBAPI connection>)`` for each new
  DBAPI connection its pool opens, after SQLAlchemy has set it up and before it is used;
  the sender is the DBAPI connection's class.

It returns an ``Installation``, whose ``uninstall()`` removes every listener it added.

Only what goes through the unit of work sends: bulk statements (``session.execute(update(
...))``, ``insert()`` with many rows) write rows without loading objects, and SQLAlchemy
reports no object for them.

``on_commit(session)`` returns a batch (see ``tocsin.commit``) tied to the session's
transactions: its sends go out once the session's outermost transaction commits, and are
dropped if it rolls back or the session closes first. A send collected inside a savepoint
(``session.begin_nested()``) is dropped if that savepoint rolls back, and otherwise waits on
the enclosing transaction. A block that ends while the session has no transaction waits for
the next one, in which the session will store the objects it holds.

SQLAlchemy is imported when this module is, so ``import tocsin`` never needs it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any, Final

from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapper, Session, SessionTransaction, object_session, registry
from sqlalchemy.orm import sessionmaker as SessionMaker

from tocsin import catalogue
from tocsin.commit import Batch, TransactionLedger
from tocsin.emit import DEFAULT_DB_ALIAS

__all__ = ["Installation", "install", "on_commit"]

Listener = Callable[..., None]

# Targets with an installation, so that a second install() on one is refused.
_installed: weakref.WeakSet[Any] = weakref.WeakSet()

_LEDGER_KEY: Final = "tocsin.on_commit"  # where a session keeps its ledger, in session.info


class Installation:
    """The listeners one ``install()`` added; ``uninstall()`` removes them."""

    def __init__(self, target: object) -> None:
        self.target = target
        self._listeners: list[tuple[Any, str, Listener]] = []

    def __repr__(self) -> str:
        state = "installed" if self._listeners else "uninstalled"
        return f"<tocsin.contrib.sqlalchemy.Installation on {self.target!r}, {state}>"

    def _listen(self, on: Any, identifier: str, listener: Listener, **options: Any) -> None:
        event.listen(on, identifier, listener, **options)
        self._listeners.append((on, identifier, listener))

    def uninstall(self) -> None:
        """Remove every listener ``install()`` added; calling it again does nothing."""
        while self._listeners:
            on, identifier, listener = self._listeners.pop()
            event.remove(on, identifier, listener)
        _installed.discard(self.target)


def install(target: object, *, using: str = DEFAULT_DB_ALIAS) -> Installation:
    """Make ``target`` send the catalogue's signals; return the ``Installation``.

    ``target`` is a mapped class, a declarative base, a ``Session`` class or instance, a
    ``sessionmaker`` (model signals, sent with ``using`` as the database alias) or an
    ``Engine`` (``connection_created``). Installing twice on one target is an error; cover
    classes either through their base or one by one, not both, or each flush is reported
    twice.
    """
    if not isinstance(using, str):
        raise TypeError(f"install(using=...) takes a database alias string; got {using!r}")
    if _is_installed(target):
        raise ValueError(
            f"tocsin.contrib.sqlalchemy.install(): {target!r} already sends the signals; "
            "uninstall() the first installation before installing again"
        )
    installation = Installation(target)
    if isinstance(target, Engine):
        installation._listen(target, "connect", _connection_created)
    elif _is_model(target):
        for identifier, listener in _model_listeners(using, lambda instance: True).items():
            installation._listen(target, identifier, listener, propagate=True)
    elif _is_session_source(target):
        # Mapper events cannot be scoped to a session: listen on every mapper, and act only
        # for objects whose session the target made (marked on the session when it flushes).
        sessions: weakref.WeakSet[Session] = weakref.WeakSet()

        def mark(session: Session, flush_context: object, instances: object) -> None:
            sessions.add(session)

        def ours(instance: object) -> bool:
            session = object_session(instance)
            return session is not None and session in sessions

        installation._listen(target, "before_flush", mark)
        for identifier, listener in _model_listeners(using, ours).items():
            installation._listen(Mapper, identifier, listener)
    else:
        raise TypeError(
            "tocsin.contrib.sqlalchemy.install() takes a mapped class, a declarative base, a "
            f"Session, a sessionmaker or an Engine; got {target!r} ({type(target).__name__})"
        )
    _installed.add(target)
    return installation


def _is_installed(target: object) -> bool:
    try:
        return target in _installed
    except TypeError:  # not weakly referenceable, so not a target either: refused below
        return False


def _is_model(target: object) -> bool:
    if not isinstance(target, type):
        return False
    if isinstance(getattr(target, "registry", None), registry):
        return True  # a declarative base or a class mapped on one
    return isinstance(inspect(target, raiseerr=False), Mapper)  # mapped imperatively


def _is_session_source(target: object) -> bool:
    if isinstance(target, Session | SessionMaker):
        return True
    return isinstance(target, type) and issubclass(target, Session)


def _connection_created(dbapi_connection: Any, connection_record: object) -> None:
    catalogue.connection_created.send(type(dbapi_connection), connection=dbapi_connection)


def _model_listeners(using: str, wanted: Callable[[object], bool]) -> dict[str, Listener]:
    """The mapper event listeners that send the model signals for the ``wanted`` objects."""

    def changed(instance: object) -> bool:
        # SQLAlchemy calls the update hooks for every dirty object, also one whose only
        # change is to a collection: no row of its own is written, so nothing is saved.
        session = object_session(instance)
        return session is None or session.is_modified(instance, include_collections=False)

    def saving(created: bool | None) -> Listener:
        def listener(mapper: Mapper[Any], connection: object, instance: object) -> None:
            if not wanted(instance) or (created is not True and not changed(instance)):
                return
            arguments = {"instance": instance, "raw": False, "using": using}
            if created is None:
                catalogue.pre_save.send(mapper.class_, update_fields=None, **arguments)
            else:
                catalogue.post_save.send(
                    mapper.class_, created=created, update_fields=None, **arguments
                )

        return listener

    def deleting(signal: Any) -> Listener:
        def listener(mapper: Mapper[Any], connection: object, instance: object) -> None:
            if wanted(instance):
                signal.send(mapper.class_, instance=instance, using=using, origin=instance)

        return listener

    pre_save = saving(None)
    return {
        "before_insert": pre_save,
        "after_insert": saving(True),
        "before_update": pre_save,
        "after_update": saving(False),
        "before_delete": deleting(catalogue.pre_delete),
        "after_delete": deleting(catalogue.post_delete),
    }


def on_commit(session: Session) -> Batch:
    """Return a batch whose sends wait for ``session``'s transaction to commit.

    Use it as ``with on_commit(session) as batch:`` (or ``async with``), and collect with
    ``batch.send(...)`` or ``defer=batch``. See the module docstring for savepoints and for
    a block that ends between transactions.
    """
    if not isinstance(session, Session):
        raise TypeError(
            "tocsin.contrib.sqlalchemy.on_commit() needs a sqlalchemy.orm.Session; "
            f"got {session!r} ({type(session).__name__})"
        )
    ledger = session.info.get(_LEDGER_KEY)
    if ledger is None:
        ledger = _watch(session)
        session.info[_LEDGER_KEY] = ledger
    batch: Batch = ledger.batch()
    return batch


def _watch(session: Session) -> TransactionLedger:
    """Make the ledger of ``session`` and report its transactions to it."""
    held = weakref.ref(session)

    def current() -> Hashable | None:
        alive = held()
        if alive is None:
            return None
        transaction: SessionTransaction | None = (
            alive.get_nested_transaction() or alive.get_transaction()
        )
        return transaction

    ledger = TransactionLedger(current, outside="wait")
    # The outermost transaction that committed, until it ends (after_commit runs while the
    # session cannot be used yet; receivers run from after_transaction_end, when it can).
    committed: list[SessionTransaction] = []

    def began(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            ledger.begin(transaction)

    def after_commit(session: Session) -> None:
        savepoint = session.get_nested_transaction()
        if savepoint is not None:
            ledger.release(savepoint, savepoint.parent)
        else:
            outermost = session.get_transaction()
            if outermost is not None:
                committed.append(outermost)

    def ended(session: Session, transaction: SessionTransaction) -> None:
        if committed and committed[-1] is transaction:
            committed.pop()
            ledger.commit(transaction)
        else:
            ledger.discard(transaction)

    event.listen(session, "after_transaction_create", began)
    event.listen(session, "after_commit", after_commit)
    event.listen(session, "after_transaction_end", ended)
    return ledger
