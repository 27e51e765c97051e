"""tocsin.contrib.sqlalchemy: ORM events as model signals, connection_created from engines,
and batches tied to a session's transactions, against a real SQLite database file."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "sqlalchemy",
    reason="SQLAlchemy is the optional extra tocsin[sqlalchemy]: pip install -e '.[sqlalchemy]'",
)

from sqlalchemy import ForeignKey, String, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from tocsin import Signal, catalogue
from tocsin.contrib import sqlalchemy as bridge

MODEL_SIGNALS = (
    catalogue.pre_save,
    catalogue.post_save,
    catalogue.pre_delete,
    catalogue.post_delete,
)
PAGE = Path(__file__).resolve().parent.parent / "docs" / "integrations.md"


class Base(DeclarativeBase):
    pass


class Pizza(Base):
    __tablename__ = "pizza"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    toppings: Mapped[list[Topping]] = relationship(
        back_populates="pizza", cascade="all, delete-orphan"
    )


class Topping(Base):
    __tablename__ = "topping"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    pizza_id: Mapped[int] = mapped_column(ForeignKey("pizza.id"))
    pizza: Mapped[Pizza] = relationship(back_populates="toppings")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = create_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    Base.metadata.create_all(made)
    yield made
    made.dispose()


Install = Callable[..., bridge.Installation]


@pytest.fixture
def install() -> Iterator[Install]:
    """``install(target, using=...)``: ``tocsin.contrib.sqlalchemy.install``, undone when the
    test ends."""
    installations: list[bridge.Installation] = []

    def install_for_the_test(target: object, **options: Any) -> bridge.Installation:
        installation = bridge.install(target, **options)
        installations.append(installation)
        return installation

    yield install_for_the_test
    for installation in installations:
        installation.uninstall()


def summary(heard: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """The events without the instance, which tests check separately."""
    return [
        (name, sender.__name__, {k: v for k, v in named.items() if k not in {"instance", "origin"}})
        for name, sender, named in heard.events
    ]


# --- install: model signals -----------------------------------------------------------------------


def test_a_declarative_base_sends_the_model_signals_with_djangos_arguments(
    engine: Engine, hear: Any, install: Install
) -> None:
    heard = hear(*MODEL_SIGNALS)
    install(Base)
    with Session(engine) as session:
        pizza = Pizza(name="margherita")
        session.add(pizza)
        session.commit()
        pizza.name = "diavola"
        session.commit()
        session.delete(pizza)
        session.commit()
    common = {"raw": False, "using": "default"}
    assert summary(heard) == [
        ("pre_save", "Pizza", {**common, "update_fields": None}),
        ("post_save", "Pizza", {**common, "created": True, "update_fields": None}),
        ("pre_save", "Pizza", {**common, "update_fields": None}),
        ("post_save", "Pizza", {**common, "created": False, "update_fields": None}),
        ("pre_delete", "Pizza", {"using": "default"}),
        ("post_delete", "Pizza", {"using": "default"}),
    ]
    assert all(named["instance"] is pizza for _, _, named in heard.events)
    assert [named["origin"] for _, _, named in heard.events[4:]] == [pizza, pizza]


def test_post_save_comes_after_the_row_is_written_in_the_transaction(
    engine: Engine, install: Install
) -> None:
    rows: list[tuple[str, int]] = []

    def count(signal: Signal, sender: object, instance: Pizza, **kwargs: Any) -> None:
        session = Session.object_session(instance)
        assert session is not None
        total = len(session.connection().execute(select(Pizza.id)).all())
        rows.append((signal.name or "", total))

    install(Pizza)
    with (
        catalogue.pre_save.connected_to(count, sender=Pizza),
        catalogue.post_save.connected_to(count, sender=Pizza),
        Session(engine) as session,
    ):
        session.add(Pizza(name="marinara"))
        session.commit()
    assert rows == [("pre_save", 0), ("post_save", 1)]


def test_a_mapped_class_sends_only_for_itself_with_the_given_alias(
    engine: Engine, hear: Any, install: Install
) -> None:
    heard = hear(*MODEL_SIGNALS)
    install(Topping, using="replica")
    with Session(engine) as session:
        session.add(Pizza(name="capricciosa", toppings=[Topping(name="olive")]))
        session.commit()
    assert [(name, sender) for name, sender, _ in summary(heard)] == [
        ("pre_save", "Topping"),
        ("post_save", "Topping"),
    ]
    assert {named["using"] for _, _, named in heard.events} == {"replica"}


def test_cascaded_deletes_send_for_each_object(engine: Engine, hear: Any, install: Install) -> None:
    heard = hear(catalogue.pre_delete, catalogue.post_delete)
    install(Base)
    with Session(engine) as session:
        pizza = Pizza(name="quattro stagioni", toppings=[Topping(name="ham")])
        session.add(pizza)
        session.commit()
        session.delete(pizza)
        session.commit()
    assert sorted((name, sender) for name, sender, _ in summary(heard)) == [
        ("post_delete", "Pizza"),
        ("post_delete", "Topping"),
        ("pre_delete", "Pizza"),
        ("pre_delete", "Topping"),
    ]


def test_a_change_to_a_collection_only_saves_the_new_object(
    engine: Engine, hear: Any, install: Install
) -> None:
    install(Base)
    with Session(engine) as session:
        pizza = Pizza(name="bianca")
        session.add(pizza)
        session.commit()
        heard = hear(*MODEL_SIGNALS)
        pizza.toppings.append(Topping(name="rocket"))
        session.commit()
    assert [(name, sender) for name, sender, _ in summary(heard)] == [
        ("pre_save", "Topping"),
        ("post_save", "Topping"),
    ]


@pytest.mark.parametrize("kind", ["instance", "class", "sessionmaker"])
def test_a_session_source_sends_only_for_its_own_sessions(
    engine: Engine, hear: Any, install: Install, kind: str
) -> None:
    heard = hear(*MODEL_SIGNALS)

    class ShopSession(Session):
        pass

    maker = sessionmaker(engine, expire_on_commit=False)
    watched = {
        "instance": lambda: own_session,
        "class": lambda: ShopSession(engine, expire_on_commit=False),
        "sessionmaker": maker,
    }[kind]
    own_session = Session(engine, expire_on_commit=False)
    target = {"instance": own_session, "class": ShopSession, "sessionmaker": maker}[kind]
    install(target, using="shop")
    try:
        with Session(engine, expire_on_commit=False) as other:
            other.add(Pizza(name="not watched"))
            other.commit()
        with watched() as session:
            session.add(Pizza(name="watched"))
            session.commit()
    finally:
        own_session.close()
    assert [(name, named["instance"].name) for name, _, named in heard.events] == [
        ("pre_save", "watched"),
        ("post_save", "watched"),
    ]


# --- install: engines -----------------------------------------------------------------------------


def test_an_engine_sends_connection_created_for_each_new_dbapi_connection(
    engine: Engine, hear: Any, install: Install
) -> None:
    heard = hear(catalogue.connection_created)
    install(engine)
    engine.dispose()  # start from an empty pool
    with engine.connect() as first, engine.connect() as second:
        assert heard.count("connection_created") == 2
        raw = [first.connection.dbapi_connection, second.connection.dbapi_connection]
    with engine.connect():
        pass  # the pool hands back a connection it already has: nothing new
    assert heard.count("connection_created") == 2
    assert [(sender, named["connection"]) for _, sender, named in heard.events] == [
        (sqlite3.Connection, raw[0]),
        (sqlite3.Connection, raw[1]),
    ]


# --- uninstall and mistakes -----------------------------------------------------------------------


def test_uninstall_removes_every_listener(engine: Engine, hear: Any) -> None:
    heard = hear(*MODEL_SIGNALS, catalogue.connection_created)
    installations = [bridge.install(target) for target in (Base, Session, engine)]
    for installation in installations:
        installation.uninstall()
        installation.uninstall()  # a second time does nothing
    for target in (Pizza, Topping):
        for identifier in ("before_insert", "after_insert", "before_update", "after_update"):
            assert not event.contains(target, identifier, lambda *args: None)
    with Session(engine) as session:
        session.add(Pizza(name="silent"))
        session.commit()
    assert heard.events == []
    # And it can be installed again.
    bridge.install(Base).uninstall()


def test_installing_twice_on_one_target_is_refused() -> None:
    installation = bridge.install(Base)
    try:
        with pytest.raises(ValueError, match="already sends the signals"):
            bridge.install(Base)
    finally:
        installation.uninstall()


def test_install_refuses_what_it_cannot_watch() -> None:
    with pytest.raises(TypeError, match=r"takes a mapped class, a declarative base.*got .Pizza."):
        bridge.install("Pizza")
    with pytest.raises(TypeError, match="takes a database alias string; got 3"):
        bridge.install(Base, using=3)  # type: ignore[arg-type]


# --- on_commit ------------------------------------------------------------------------------------

order_stored = Signal(name="order_stored", arguments=["order"])


@pytest.fixture
def stored(engine: Engine) -> Iterator[list[tuple[str, int]]]:
    """What order_stored delivered: (order, rows that a separate connection sees then)."""
    record: list[tuple[str, int]] = []

    def count(sender: object, order: str, **kwargs: Any) -> None:
        with engine.connect() as other:
            record.append((order, len(other.execute(select(Pizza.id)).all())))

    order_stored.connect(count)
    yield record
    order_stored.disconnect(count)


def test_a_batch_is_sent_after_the_session_commits(
    engine: Engine, stored: list[tuple[str, int]]
) -> None:
    with Session(engine) as session:
        with bridge.on_commit(session) as batch:
            session.add(Pizza(name="margherita"))
            batch.send(order_stored, None, order="margherita")
        session.flush()
        assert stored == []
        session.commit()
    assert stored == [("margherita", 1)]


def test_a_rolled_back_transaction_sends_nothing(
    engine: Engine, stored: list[tuple[str, int]]
) -> None:
    with Session(engine) as session:
        with bridge.on_commit(session) as batch:
            session.add(Pizza(name="ghost"))
            session.flush()
            batch.send(order_stored, None, order="ghost")
        session.rollback()
        session.commit()
    assert stored == []


def test_closing_the_session_before_the_commit_drops_the_batch(
    engine: Engine, stored: list[tuple[str, int]]
) -> None:
    session = Session(engine)
    with bridge.on_commit(session) as batch:
        session.add(Pizza(name="abandoned"))
        session.flush()
        batch.send(order_stored, None, order="abandoned")
    session.close()
    assert stored == []


def test_savepoints_drop_what_they_roll_back_and_pass_on_what_they_release(
    engine: Engine, stored: list[tuple[str, int]]
) -> None:
    with Session(engine) as session:
        with bridge.on_commit(session) as batch:
            session.add(Pizza(name="main"))
            session.flush()
            batch.send(order_stored, None, order="main")
            try:
                with session.begin_nested():
                    session.add(Pizza(name="extra"))
                    batch.send(order_stored, None, order="extra")
                    raise LookupError("out of stock")
            except LookupError:
                pass
            with session.begin_nested(), session.begin_nested():
                session.add(Pizza(name="side"))
                batch.send(order_stored, None, order="side")
        assert stored == []
        session.commit()
    assert stored == [("main", 2), ("side", 2)]


def test_a_block_that_ends_between_transactions_waits_for_the_next_commit(
    engine: Engine, stored: list[tuple[str, int]]
) -> None:
    with Session(engine) as session:
        assert session.get_transaction() is None
        with bridge.on_commit(session) as batch:
            batch.send(order_stored, None, order="pending")
        assert stored == []
        session.add(Pizza(name="pending"))
        session.commit()
    assert stored == [("pending", 1)]


def test_a_block_left_open_across_a_rollback_never_sends_what_was_rolled_back(
    engine: Engine, stored: list[tuple[str, int]]
) -> None:
    with Session(engine) as session, bridge.on_commit(session) as batch:
        session.add(Pizza(name="rolled back"))
        session.flush()
        batch.send(order_stored, None, order="rolled back")
        session.rollback()
        session.add(Pizza(name="kept"))
        batch.send(order_stored, None, order="kept")
        session.commit()
        assert stored == [("kept", 1)]


def test_a_failed_flush_rolls_back_and_drops_the_batch(
    engine: Engine, stored: list[tuple[str, int]]
) -> None:
    with Session(engine) as session:
        with bridge.on_commit(session) as batch:
            session.add(Pizza(name="ok"))
            session.flush()
            batch.send(order_stored, None, order="ok")
        session.add(Pizza(id=1, name="duplicate key"))
        with pytest.raises(Exception, match="UNIQUE constraint failed"):
            session.flush()
        session.rollback()
        session.commit()
    assert stored == []


def test_receivers_may_use_the_session_again(engine: Engine) -> None:
    made: list[int] = []

    def follow_up(sender: Session, order: str, **kwargs: Any) -> None:
        sender.add(Pizza(name=f"follow-up of {order}"))
        sender.commit()
        made.append(len(sender.scalars(select(Pizza)).all()))

    order_stored.connect(follow_up)
    try:
        with Session(engine) as session:
            with bridge.on_commit(session) as batch:
                session.add(Pizza(name="first"))
                batch.send(order_stored, session, order="first")
            session.commit()
    finally:
        order_stored.disconnect(follow_up)
    assert made == [2]


def test_on_commit_refuses_what_is_not_a_session() -> None:
    with pytest.raises(TypeError, match=r"needs a sqlalchemy\.orm\.Session; got .session."):
        bridge.on_commit("session")  # type: ignore[arg-type]


# --- the documentation's SQLAlchemy examples ------------------------------------------------------

# They are in ```py blocks, which the page tests skip, since SQLAlchemy is optional: run here.
_SQLALCHEMY_BLOCK = re.compile(r"^```py\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_the_integration_pages_sqlalchemy_examples_run(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    text = PAGE.read_text(encoding="utf-8")
    blocks = [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _SQLALCHEMY_BLOCK.finditer(text)
    ]
    assert blocks, "the page shows no SQLAlchemy example"
    namespace: dict[str, Any] = {"__name__": "docs_integrations_sqlalchemy"}
    for line, source in blocks:
        exec(compile("\n" * (line - 1) + source, str(PAGE), "exec", dont_inherit=True), namespace)
