"""tocsin.emit: the model signals, sent around saves, deletes, m2m changes and construction."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

import tocsin
from tocsin import Signal, catalogue
from tocsin.emit import changing_m2m, deleting, model_signals, saving

MODEL_SIGNALS = (
    catalogue.pre_init,
    catalogue.post_init,
    catalogue.pre_save,
    catalogue.post_save,
    catalogue.pre_delete,
    catalogue.post_delete,
    catalogue.m2m_changed,
    catalogue.class_prepared,
)


class Heard(list[tuple[str, object, dict[str, Any]]]):
    """What the model signals delivered, in order: (signal name, sender, arguments)."""

    def names(self) -> list[str]:
        return [name for name, _, _ in self]

    def mark(self, event: str) -> None:
        """Record something that is not a signal (the block running), to check the order."""
        self.append((event, None, {}))


@pytest.fixture
def heard() -> Iterator[Heard]:
    record = Heard()

    def listen(signal: Signal, sender: object, **arguments: Any) -> None:
        record.append((signal.name or "", sender, arguments))

    for signal in MODEL_SIGNALS:
        signal.connect(listen)
    try:
        yield record
    finally:
        for signal in MODEL_SIGNALS:
            signal.disconnect(listen)


class Pizza:
    def __init__(self, name: str = "margherita") -> None:
        self.name = name


class Topping:
    pass


# --- saving ---------------------------------------------------------------------------------------


def test_saving_sends_pre_save_before_the_block_and_post_save_after_it(heard: Heard) -> None:
    pizza = Pizza()
    with saving(pizza, created=True):
        heard.mark("block")
    assert heard.names() == ["pre_save", "block", "post_save"]
    common = {"instance": pizza, "raw": False, "using": "default", "update_fields": None}
    assert heard[0] == ("pre_save", Pizza, common)
    assert heard[2] == ("post_save", Pizza, {**common, "created": True})


def test_saving_tells_post_save_whether_the_record_was_created(heard: Heard) -> None:
    with saving(Pizza(), created=False):
        pass
    assert heard[-1][2]["created"] is False


def test_saving_passes_raw_using_and_update_fields_as_a_frozenset(heard: Heard) -> None:
    with saving(Pizza(), created=False, raw=True, using="replica", update_fields=["name"]):
        pass
    for _, _, arguments in heard:
        assert arguments["raw"] is True
        assert arguments["using"] == "replica"
        assert arguments["update_fields"] == frozenset({"name"})
        assert isinstance(arguments["update_fields"], frozenset)


def test_saving_uses_the_given_sender_instead_of_the_class(heard: Heard) -> None:
    with saving(Pizza(), created=True, sender="pizzas"):
        pass
    assert [sender for _, sender, _ in heard] == ["pizzas", "pizzas"]


def test_saving_sends_no_post_save_when_the_block_raises(heard: Heard) -> None:
    with pytest.raises(sqlite3.IntegrityError), saving(Pizza(), created=True):
        raise sqlite3.IntegrityError("UNIQUE constraint failed")
    assert heard.names() == ["pre_save"]


def test_saving_skips_the_block_when_a_pre_save_receiver_raises(heard: Heard) -> None:
    def veto(sender: object, **kwargs: Any) -> None:
        raise PermissionError("read-only")

    catalogue.pre_save.connect(veto)
    try:
        with pytest.raises(PermissionError), saving(Pizza(), created=True):
            heard.mark("block")
    finally:
        catalogue.pre_save.disconnect(veto)
    assert "block" not in heard.names()
    assert "post_save" not in heard.names()


def test_saving_around_sqlite3_lets_receivers_see_the_row_only_after_the_write() -> None:
    database = sqlite3.connect(":memory:")
    database.execute("CREATE TABLE pizza (name TEXT)")
    counts: list[tuple[str, int]] = []

    def count_rows(signal: Signal, sender: object, **kwargs: Any) -> None:
        (rows,) = database.execute("SELECT count(*) FROM pizza").fetchone()
        counts.append((signal.name or "", rows))

    catalogue.pre_save.connect(count_rows, sender=Pizza)
    catalogue.post_save.connect(count_rows, sender=Pizza)
    try:
        pizza = Pizza("diavola")
        with saving(pizza, created=True):
            database.execute("INSERT INTO pizza VALUES (?)", (pizza.name,))
    finally:
        catalogue.pre_save.disconnect(count_rows, sender=Pizza)
        catalogue.post_save.disconnect(count_rows, sender=Pizza)
        database.close()
    assert counts == [("pre_save", 0), ("post_save", 1)]


# --- deleting -------------------------------------------------------------------------------------


def test_deleting_sends_pre_delete_and_post_delete_around_the_block(heard: Heard) -> None:
    pizza = Pizza()
    with deleting(pizza):
        heard.mark("block")
    assert heard.names() == ["pre_delete", "block", "post_delete"]
    expected = {"instance": pizza, "using": "default", "origin": pizza}
    assert heard[0] == ("pre_delete", Pizza, expected)
    assert heard[2] == ("post_delete", Pizza, expected)


def test_deleting_passes_the_origin_the_delete_started_from(heard: Heard) -> None:
    pizza = Pizza()
    whole_menu = [pizza, Pizza("marinara")]
    with deleting(pizza, origin=whole_menu, using="archive", sender="menu"):
        pass
    for _, sender, arguments in heard:
        assert sender == "menu"
        assert arguments["origin"] is whole_menu
        assert arguments["using"] == "archive"


def test_deleting_sends_no_post_delete_when_the_block_raises(heard: Heard) -> None:
    with pytest.raises(FileNotFoundError), deleting(Pizza()):
        raise FileNotFoundError("pizza.json")
    assert heard.names() == ["pre_delete"]


# --- changing_m2m ---------------------------------------------------------------------------------


def test_changing_m2m_add_sends_pre_add_and_post_add_with_a_key_set(heard: Heard) -> None:
    pizza = Pizza()
    with changing_m2m(pizza, "add", model=Topping, pk_set=[1, 2, 2]):
        heard.mark("block")
    assert [(name, a.get("action")) for name, _, a in heard] == [
        ("m2m_changed", "pre_add"),
        ("block", None),
        ("m2m_changed", "post_add"),
    ]
    assert heard[0][1] is Pizza
    assert heard[0][2] == {
        "instance": pizza,
        "action": "pre_add",
        "reverse": False,
        "model": Topping,
        "pk_set": {1, 2},
        "using": "default",
        "raw": False,
    }


def test_changing_m2m_remove_sends_pre_remove_and_post_remove(heard: Heard) -> None:
    with changing_m2m(Pizza(), "remove", model=Topping, pk_set={3}):
        pass
    assert [a["action"] for _, _, a in heard] == ["pre_remove", "post_remove"]
    assert [a["pk_set"] for _, _, a in heard] == [{3}, {3}]


def test_changing_m2m_clear_sends_no_key_set(heard: Heard) -> None:
    with changing_m2m(Pizza(), "clear", model=Topping):
        pass
    assert [(a["action"], a["pk_set"]) for _, _, a in heard] == [
        ("pre_clear", None),
        ("post_clear", None),
    ]


def test_changing_m2m_from_the_reverse_side_with_a_through_sender(heard: Heard) -> None:
    topping = Topping()
    with changing_m2m(
        topping,
        "add",
        model=Pizza,
        pk_set={"margherita"},
        reverse=True,
        sender="pizza_toppings",
        using="menu",
        raw=True,
    ):
        pass
    for _, sender, arguments in heard:
        assert sender == "pizza_toppings"
        assert arguments["instance"] is topping
        assert arguments["reverse"] is True
        assert arguments["model"] is Pizza
        assert arguments["using"] == "menu"
        assert arguments["raw"] is True


def test_changing_m2m_sends_no_post_action_when_the_block_raises(heard: Heard) -> None:
    with pytest.raises(RuntimeError), changing_m2m(Pizza(), "add", model=Topping, pk_set={1}):
        raise RuntimeError("disk full")
    assert [a["action"] for _, _, a in heard] == ["pre_add"]


@pytest.mark.parametrize(
    ("change", "pk_set", "message"),
    [
        ("replace", {1}, "use one of: add, remove, clear"),
        ("clear", {1}, "takes no pk_set"),
        ("add", None, "needs pk_set"),
        ("remove", None, "needs pk_set"),
    ],
)
def test_changing_m2m_rejects_a_bad_change_before_sending(
    heard: Heard, change: Any, pk_set: set[int] | None, message: str
) -> None:
    with (
        pytest.raises(ValueError, match=message),
        changing_m2m(Pizza(), change, model=Topping, pk_set=pk_set),
    ):
        heard.mark("block")
    assert heard == []


# --- model_signals ------------------------------------------------------------------------------


def test_model_signals_sends_class_prepared_when_the_class_is_decorated(heard: Heard) -> None:
    @model_signals
    class Order:
        pass

    assert heard == [("class_prepared", Order, {})]


def test_model_signals_sends_pre_init_and_post_init_around_init(heard: Heard) -> None:
    @model_signals
    class Order:
        def __init__(self, number: int, *, table: str = "") -> None:
            heard.mark("init")
            self.number = number
            self.table = table

    heard.clear()
    order = Order(7, table="terrace")
    assert heard.names() == ["pre_init", "init", "post_init"]
    assert heard[0] == ("pre_init", Order, {"args": (7,), "kwargs": {"table": "terrace"}})
    assert heard[2] == ("post_init", Order, {"instance": order})


def test_model_signals_works_on_dataclasses_and_keeps_their_signature(heard: Heard) -> None:
    @model_signals
    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 0

    heard.clear()
    point = Point(1, y=2)
    assert point == Point(1, 2)
    assert heard[0] == ("pre_init", Point, {"args": (1,), "kwargs": {"y": 2}})
    assert heard[1] == ("post_init", Point, {"instance": point})
    assert list(inspect.signature(Point).parameters) == ["x", "y"]


def test_model_signals_sends_no_post_init_when_init_raises(heard: Heard) -> None:
    @model_signals
    class Order:
        def __init__(self, number: int) -> None:
            if number < 0:
                raise ValueError("negative order number")

    heard.clear()
    with pytest.raises(ValueError, match="negative"):
        Order(-1)
    assert heard.names() == ["pre_init"]


def test_model_signals_sends_with_the_subclass_as_sender(heard: Heard) -> None:
    @model_signals
    class Order:
        pass

    class Takeaway(Order):
        pass

    heard.clear()
    takeaway = Takeaway()
    assert heard == [
        ("pre_init", Takeaway, {"args": (), "kwargs": {}}),
        ("post_init", Takeaway, {"instance": takeaway}),
    ]


def test_model_signals_sends_once_when_a_decorated_subclass_calls_a_decorated_base(
    heard: Heard,
) -> None:
    @model_signals
    class Order:
        def __init__(self, number: int) -> None:
            self.number = number

    @model_signals
    class Delivery(Order):
        def __init__(self, number: int, address: str) -> None:
            super().__init__(number)
            self.address = address

    heard.clear()
    Delivery(3, "via Roma 1")
    assert heard.names() == ["pre_init", "post_init"]
    assert heard[0][1] is Delivery
    assert heard[0][2] == {"args": (3, "via Roma 1"), "kwargs": {}}


def test_model_signals_sends_again_for_an_object_built_inside_init(heard: Heard) -> None:
    @model_signals
    class Item:
        pass

    @model_signals
    class Basket:
        def __init__(self) -> None:
            self.first = Item()

    heard.clear()
    Basket()
    assert [(name, sender) for name, sender, _ in heard] == [
        ("pre_init", Basket),
        ("pre_init", Item),
        ("post_init", Item),
        ("post_init", Basket),
    ]


# --- async with -----------------------------------------------------------------------------------


def test_every_helper_works_with_async_with(heard: Heard) -> None:
    pizza = Pizza()

    async def store() -> None:
        async with saving(pizza, created=True):
            heard.mark("saved")
        async with deleting(pizza):
            heard.mark("deleted")
        async with changing_m2m(pizza, "add", model=Topping, pk_set=[1]):
            heard.mark("linked")

    asyncio.run(store())
    assert heard.names() == [
        "pre_save",
        "saved",
        "post_save",
        "pre_delete",
        "deleted",
        "post_delete",
        "m2m_changed",
        "linked",
        "m2m_changed",
    ]


def test_async_saving_runs_async_receivers_on_the_loop_and_never_blocks_it() -> None:
    loop: list[asyncio.AbstractEventLoop] = []
    log: list[str] = []

    async def index_search(sender: object, instance: Pizza, **kwargs: Any) -> None:
        log.append(f"async receiver on the caller's loop: {asyncio.get_running_loop() is loop[0]}")

    def wait_for_the_loop(sender: object, **kwargs: Any) -> None:
        # Run on the loop's thread, this would wait for itself; asend runs it in a worker.
        ready = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "loop free"), loop[0])
        log.append(ready.result(timeout=10))

    async def save() -> None:
        loop.append(asyncio.get_running_loop())
        async with saving(Pizza(), created=True):
            pass

    catalogue.post_save.connect(index_search, sender=Pizza)
    catalogue.post_save.connect(wait_for_the_loop, sender=Pizza)
    try:
        asyncio.run(save())
    finally:
        catalogue.post_save.disconnect(index_search, sender=Pizza)
        catalogue.post_save.disconnect(wait_for_the_loop, sender=Pizza)
    assert log == ["loop free", "async receiver on the caller's loop: True"]


def test_async_saving_sends_no_post_save_when_the_block_raises(heard: Heard) -> None:
    async def store() -> None:
        async with saving(Pizza(), created=True):
            raise sqlite3.IntegrityError("UNIQUE constraint failed")

    with pytest.raises(sqlite3.IntegrityError):
        asyncio.run(store())
    assert heard.names() == ["pre_save"]


def test_a_helper_serves_one_block(heard: Heard) -> None:
    block = saving(Pizza(), created=True)
    with block:
        pass
    with pytest.raises(RuntimeError, match="pre_save block was already entered"), block:
        pass


# --- defer= ---------------------------------------------------------------------------------------


def test_defer_collects_the_post_signal_in_the_batch_and_sends_pre_at_once(heard: Heard) -> None:
    pizza = Pizza()
    with tocsin.on_commit() as batch:
        with saving(pizza, created=True, defer=batch):
            heard.mark("saved")
        with deleting(pizza, defer=batch):
            heard.mark("deleted")
        with changing_m2m(pizza, "clear", model=Topping, defer=batch):
            heard.mark("cleared")
        heard.mark("block ends")
    assert heard.names() == [
        "pre_save",
        "saved",
        "pre_delete",
        "deleted",
        "m2m_changed",
        "cleared",
        "block ends",
        "post_save",
        "post_delete",
        "m2m_changed",
    ]
    assert heard[-1][2]["action"] == "post_clear"


def test_deferred_signals_are_dropped_with_a_failing_batch(heard: Heard) -> None:
    with pytest.raises(LookupError), tocsin.on_commit() as batch:
        with saving(Pizza(), created=True, defer=batch):
            pass
        raise LookupError("the order fell through")
    assert heard.names() == ["pre_save"]


def test_async_with_and_defer_work_together(heard: Heard) -> None:
    async def store() -> None:
        async with tocsin.on_commit() as batch:
            async with saving(Pizza(), created=True, defer=batch):
                pass
            heard.mark("block ends")

    asyncio.run(store())
    assert heard.names() == ["pre_save", "block ends", "post_save"]


def test_defer_refuses_a_closed_batch_or_something_else_before_sending(heard: Heard) -> None:
    with tocsin.on_commit() as batch:
        pass
    with pytest.raises(RuntimeError, match=r"saving\(defer=.*the batch is not open"):
        saving(Pizza(), created=True, defer=batch)
    with pytest.raises(TypeError, match=r"takes a batch from tocsin.on_commit\(\); got 'later'"):
        deleting(Pizza(), defer="later")  # type: ignore[arg-type]
    assert heard.names() == []


# --- the helpers agree with the catalogue -------------------------------------------------------


@pytest.mark.usefixtures("strict_everywhere")
def test_every_helper_sends_exactly_the_declared_arguments() -> None:
    @model_signals
    @dataclasses.dataclass
    class Order:
        number: int

    order = Order(1)
    with saving(order, created=True, update_fields={"number"}):
        pass
    with deleting(order):
        pass
    for change, keys in (("add", {1}), ("remove", {1}), ("clear", None)):
        with changing_m2m(order, change, model=Pizza, pk_set=keys):  # type: ignore[arg-type]
            pass
