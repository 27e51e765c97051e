"""tocsin.contrib.sqlite: connection_created, and batches tied to a connection's commits,
against real database files."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tocsin import Signal, catalogue
from tocsin.contrib import sqlite
from tocsin.emit import saving

order_stored = Signal(name="order_stored", arguments=["order"])


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
    setup.close()
    return path


@pytest.fixture
def connection(database: Path) -> Iterator[sqlite.Connection]:
    opened = sqlite.connect(database)
    yield opened
    opened.close()


@pytest.fixture
def stored(database: Path) -> Iterator[list[tuple[object, int]]]:
    """What order_stored delivered: (order, rows a separate connection sees at that moment)."""
    record: list[tuple[object, int]] = []

    def count_rows(sender: object, order: object, **kwargs: Any) -> None:
        with sqlite3.connect(database) as other:
            (rows,) = other.execute("SELECT count(*) FROM orders").fetchone()
        other.close()
        record.append((order, rows))

    order_stored.connect(count_rows)
    yield record
    order_stored.disconnect(count_rows)


def insert(connection: sqlite3.Connection, item: str = "pizza") -> int:
    cursor = connection.execute("INSERT INTO orders (item) VALUES (?)", (item,))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


# --- connection_created ---------------------------------------------------------------------------


def test_connect_sends_connection_created_once_with_the_connection(
    database: Path, hear: Any
) -> None:
    heard = hear(catalogue.connection_created)
    connection = sqlite.connect(database)
    try:
        assert heard.events == [
            ("connection_created", sqlite.Connection, {"connection": connection})
        ]
        connection.execute("SELECT 1")
        assert heard.count("connection_created") == 1
    finally:
        connection.close()


def test_the_receiver_gets_a_configured_connection_before_its_first_query(
    database: Path,
) -> None:
    def set_up(sender: object, connection: sqlite3.Connection, **kwargs: Any) -> None:
        assert connection.isolation_level is None  # the caller's configuration is in place
        connection.execute("PRAGMA foreign_keys = ON")

    catalogue.connection_created.connect(set_up)
    try:
        connection = sqlite.connect(database, isolation_level=None)
    finally:
        catalogue.connection_created.disconnect(set_up)
    try:
        assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
    finally:
        connection.close()


def test_the_class_works_as_a_sqlite3_factory_and_a_subclass_is_the_sender(
    database: Path, hear: Any
) -> None:
    class Audited(sqlite.Connection):
        pass

    heard = hear(catalogue.connection_created)
    plain = sqlite3.connect(database, factory=sqlite.Connection)
    audited = sqlite.connect(database, factory=Audited)
    plain.close()
    audited.close()
    assert [(sender, named["connection"]) for _, sender, named in heard.events] == [
        (sqlite.Connection, plain),
        (Audited, audited),
    ]


def test_a_failing_receiver_fails_the_connect_and_leaves_no_connection_open(
    database: Path,
) -> None:
    def refuse(sender: object, **kwargs: Any) -> None:
        raise PermissionError("read-only deployment")

    catalogue.connection_created.connect(refuse)
    try:
        with pytest.raises(PermissionError):
            sqlite.connect(database)
    finally:
        catalogue.connection_created.disconnect(refuse)
    gc.collect()  # an unclosed connection would warn here (Python 3.13), failing the test


def test_connect_refuses_a_factory_that_would_send_nothing(database: Path) -> None:
    with pytest.raises(TypeError, match=r"factory=\.\.\.\) needs tocsin.contrib.sqlite.Connection"):
        sqlite.connect(database, factory=sqlite3.Connection)


# --- on_commit ------------------------------------------------------------------------------------


def test_a_batch_is_sent_when_the_transaction_commits_not_before(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    with sqlite.on_commit(connection) as batch:
        batch.send(order_stored, None, order=insert(connection))
    assert stored == []
    connection.commit()
    assert stored == [(1, 1)]  # and another connection already sees the row


def test_a_rolled_back_transaction_sends_nothing(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    with sqlite.on_commit(connection) as batch:
        batch.send(order_stored, None, order=insert(connection))
    connection.rollback()
    connection.commit()
    assert stored == []


def test_the_connection_as_a_context_manager_commits_or_rolls_back_the_batch(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    with connection, sqlite.on_commit(connection) as batch:
        batch.send(order_stored, None, order=insert(connection, "kept"))
    with pytest.raises(ValueError), connection:
        with sqlite.on_commit(connection) as batch:
            batch.send(order_stored, None, order=insert(connection, "lost"))
        raise ValueError("the rest of the work failed")
    assert stored == [(1, 1)]


def test_closing_with_the_transaction_open_drops_the_batch(
    database: Path, stored: list[tuple[object, int]]
) -> None:
    connection = sqlite.connect(database)
    with sqlite.on_commit(connection) as batch:
        batch.send(order_stored, None, order=insert(connection))
    connection.close()
    assert stored == []


def test_a_block_that_raises_drops_its_sends_even_if_the_transaction_commits(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    with pytest.raises(KeyError), sqlite.on_commit(connection) as batch:
        batch.send(order_stored, None, order=insert(connection))
        raise KeyError("no price")
    connection.commit()
    assert stored == []


def test_in_autocommit_mode_the_batch_is_sent_when_the_block_ends(
    database: Path, stored: list[tuple[object, int]]
) -> None:
    connection = sqlite.connect(database, isolation_level=None)
    try:
        with sqlite.on_commit(connection) as batch:
            batch.send(order_stored, None, order=insert(connection))
            assert stored == []
        assert stored == [(1, 1)]
    finally:
        connection.close()


def test_a_commit_inside_the_block_sends_what_it_committed_and_the_rest_waits(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    with sqlite.on_commit(connection) as batch:
        batch.send(order_stored, None, order=insert(connection))
        connection.commit()
        assert stored == [(1, 1)]
        batch.send(order_stored, None, order=insert(connection))
    assert stored == [(1, 1)]
    connection.commit()
    assert stored == [(1, 1), (2, 2)]


def test_a_block_left_open_across_a_rollback_never_sends_what_was_rolled_back(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    with sqlite.on_commit(connection) as batch:
        insert(connection, "rolled back")
        batch.send(order_stored, None, order="rolled back")
        connection.rollback()
        insert(connection, "committed")
        batch.send(order_stored, None, order="committed")
    connection.commit()
    assert stored == [("committed", 1)]


def test_a_savepoint_rolled_back_by_an_exception_leaving_the_block_drops_its_sends(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    # sqlite3 cannot see savepoints: scope the batch inside the code the savepoint guards.
    connection.execute("SAVEPOINT extra")
    try:
        with sqlite.on_commit(connection) as batch:
            insert(connection, "extra")
            batch.send(order_stored, None, order="extra")
            raise LookupError("out of stock")
    except LookupError:
        connection.execute("ROLLBACK TO extra")
    connection.execute("RELEASE extra")
    with sqlite.on_commit(connection) as batch:
        insert(connection, "main")
        batch.send(order_stored, None, order="main")
    connection.commit()
    assert stored == [("main", 1)]


def test_nested_plain_batches_wait_for_the_connections_commit(
    connection: sqlite.Connection, stored: list[tuple[object, int]]
) -> None:
    import tocsin

    with sqlite.on_commit(connection):
        with tocsin.on_commit() as inner:  # e.g. inside library code that knows no database
            inner.send(order_stored, None, order=insert(connection))
        assert stored == []
    assert stored == []
    connection.commit()
    assert stored == [(1, 1)]


def test_saving_deferred_to_the_connection_sends_post_save_after_the_commit(
    connection: sqlite.Connection, hear: Any
) -> None:
    heard = hear(catalogue.pre_save, catalogue.post_save)

    class Order:
        id: int | None = None

    order = Order()
    with sqlite.on_commit(connection) as batch, saving(order, created=True, defer=batch):
        order.id = insert(connection)
    assert heard.names() == ["pre_save"]
    connection.commit()
    assert heard.names() == ["pre_save", "post_save"]
    assert heard.events[1][2]["created"] is True


def test_the_async_form_sends_through_asend_once_committed(
    database: Path, stored: list[tuple[object, int]]
) -> None:
    async def place_order() -> None:
        connection = sqlite.connect(database, isolation_level=None)
        try:
            async with sqlite.on_commit(connection) as batch:
                batch.send(order_stored, None, order=insert(connection))
        finally:
            connection.close()

    asyncio.run(place_order())
    assert stored == [(1, 1)]


def test_on_commit_refuses_a_plain_sqlite3_connection(database: Path) -> None:
    plain = sqlite3.connect(database)
    try:
        with pytest.raises(TypeError, match="needs a connection made by"):
            sqlite.on_commit(plain)  # type: ignore[arg-type]
    finally:
        plain.close()


def test_on_commit_refuses_a_closed_connection(database: Path) -> None:
    connection = sqlite.connect(database)
    connection.close()
    with pytest.raises(sqlite3.ProgrammingError, match="is closed"):
        sqlite.on_commit(connection)
