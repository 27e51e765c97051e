"""tocsin.discovery: autodiscover imports signals modules, load_entry_points loads plugins.

Every test builds its packages in a fresh directory on sys.path (the ``site`` fixture in
conftest.py), which forgets them afterwards. A ``ledger`` module in each site records which
modules ran, and defines the signal their receivers connect to.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

import tocsin
from tocsin import autodiscover, load_entry_points

if TYPE_CHECKING:
    from conftest import Site

T = TypeVar("T")

LEDGER = """
    from tocsin import Signal

    runs = []
    ping = Signal(name="ping")
"""

# A signals module that records that it ran, and connects one receiver.
SIGNALS = """
    import ledger
    from tocsin import receiver

    ledger.runs.append(__name__)


    @receiver(ledger.ping)
    def pong(sender, **kwargs):
        return __name__
"""


# A ledger whose modules can hold a call up: they set ``running``, then wait for ``release``.
SLOW_LEDGER = (
    LEDGER
    + """
    import threading

    running = threading.Event()
    release = threading.Event()
"""
)


def ledger() -> Any:
    return importlib.import_module("ledger")


def signals_package(site: Site, package: str, hooks: str | None = None) -> None:
    """Write the ledger and ``package``, with SIGNALS as its signals module and, if given,
    ``hooks`` as its hooks module."""
    site.write("ledger.py", LEDGER)
    site.write(f"{package}/__init__.py")
    site.write(f"{package}/signals.py", SIGNALS)
    if hooks is not None:
        site.write(f"{package}/hooks.py", hooks)


def called_twice_at_once(call: Callable[[], T]) -> dict[str, T]:
    """Call ``call`` in a thread and, once the code it runs is held up (``SLOW_LEDGER``), again
    in a second thread, which must wait for the first instead of returning; then release the
    first. Returns what each call returned, under "first" and "second"."""
    results: dict[str, T] = {}

    def run(who: str) -> None:
        results[who] = call()

    first = threading.Thread(target=run, args=("first",))
    first.start()
    assert ledger().running.wait(timeout=10)
    second = threading.Thread(target=run, args=("second",))
    second.start()
    second.join(timeout=0.2)
    assert second.is_alive()  # waiting for the first call to finish
    ledger().release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert not first.is_alive() and not second.is_alive()
    return results


@pytest.fixture
def shop(site: Site) -> Site:
    """shop/ with a signals module; shop/empty/ and plain/ without one."""
    signals_package(site, "shop")
    site.write("shop/empty/__init__.py")
    site.write("plain/__init__.py")
    site.write("plain/models.py", "import ledger\nledger.runs.append(__name__)\n")
    return site


# --- autodiscover --------------------------------------------------------------------------------


def test_autodiscover_imports_the_signals_module_and_returns_its_name(shop: Site) -> None:
    assert autodiscover("shop") == ["shop.signals"]
    assert ledger().runs == ["shop.signals"]
    assert ledger().ping.send(sender=None) == [(sys.modules["shop.signals"].pong, "shop.signals")]


def test_autodiscover_is_exported_by_the_package() -> None:
    assert tocsin.autodiscover is autodiscover
    assert tocsin.load_entry_points is load_entry_points
    assert {"autodiscover", "load_entry_points", "DuplicateReceiverWarning"} <= set(tocsin.__all__)


def test_a_package_without_a_signals_module_is_skipped(shop: Site) -> None:
    assert autodiscover("plain", "shop.empty") == []
    assert "plain" in sys.modules
    assert "plain.signals" not in sys.modules
    assert ledger().runs == []  # plain.models is not a signals module: it is not imported


def test_packages_are_handled_in_the_order_given(shop: Site) -> None:
    shop.write("books/__init__.py")
    shop.write("books/signals.py", SIGNALS)
    assert autodiscover("books", "plain", "shop") == ["books.signals", "shop.signals"]
    assert ledger().runs == ["books.signals", "shop.signals"]


def test_a_module_object_is_accepted(shop: Site) -> None:
    import shop as package  # type: ignore[import-not-found]

    assert autodiscover(package) == ["shop.signals"]


def test_each_signals_module_runs_once_however_often_autodiscover_is_called(shop: Site) -> None:
    assert autodiscover("shop") == ["shop.signals"]
    assert autodiscover("shop") == []
    assert autodiscover("shop", "shop") == []
    assert ledger().runs == ["shop.signals"]
    assert len(ledger().ping.connections()) == 1


def test_a_module_imported_before_is_not_run_again_nor_reported(shop: Site) -> None:
    import shop.signals  # type: ignore[import-not-found]  # noqa: F401

    assert autodiscover("shop") == []
    assert ledger().runs == ["shop.signals"]


def test_an_import_error_inside_the_signals_module_propagates_unchanged(site: Site) -> None:
    site.write("broken/__init__.py")
    site.write("broken/signals.py", "from broken.missing_part import handler\n")
    with pytest.raises(ModuleNotFoundError) as caught:
        autodiscover("broken")
    assert caught.value.name == "broken.missing_part"
    assert caught.value.__cause__ is None  # not wrapped, not chained

    site.write("wrong/__init__.py")
    site.write("wrong/signals.py", "raise ImportError('the payment gateway is not configured')\n")
    with pytest.raises(ImportError, match=r"^the payment gateway is not configured$"):
        autodiscover("wrong")


def test_a_failed_signals_module_is_tried_again_by_the_next_call(site: Site) -> None:
    site.write("ledger.py", LEDGER)
    site.write("flaky/__init__.py")
    site.write(
        "flaky/signals.py",
        """
        import ledger

        ledger.runs.append(__name__)
        if len(ledger.runs) == 1:
            raise RuntimeError("first run fails")
        """,
    )
    with pytest.raises(RuntimeError, match="first run fails"):
        autodiscover("flaky")
    assert autodiscover("flaky") == ["flaky.signals"]
    assert ledger().runs == ["flaky.signals", "flaky.signals"]


def test_a_missing_package_raises_module_not_found_naming_it(site: Site) -> None:
    with pytest.raises(ModuleNotFoundError, match="no package named 'nowhere_to_be_found'") as e:
        autodiscover("nowhere_to_be_found")
    assert e.value.name == "nowhere_to_be_found"

    site.write("real/__init__.py")
    with pytest.raises(ModuleNotFoundError, match=r"no package named 'real\.imaginary'") as e:
        autodiscover("real.imaginary")
    assert e.value.name == "real.imaginary"


def test_a_missing_import_inside_the_package_is_not_mistaken_for_a_missing_package(
    site: Site,
) -> None:
    site.write("needy/__init__.py", "import a_dependency_that_is_not_installed\n")
    with pytest.raises(ModuleNotFoundError) as caught:
        autodiscover("needy")
    assert caught.value.name == "a_dependency_that_is_not_installed"
    assert "needy" not in str(caught.value)


def test_a_plain_module_is_refused_naming_it(shop: Site) -> None:
    with pytest.raises(ValueError, match=r"'plain\.models' is a module, not a package"):
        autodiscover("plain.models")
    with pytest.raises(TypeError, match="package names or modules; got 42"):
        autodiscover(42)  # type: ignore[arg-type]


def test_the_submodule_name_can_be_chosen(shop: Site) -> None:
    shop.write("shop/hooks.py", SIGNALS)
    assert autodiscover("shop", module="hooks") == ["shop.hooks"]
    with pytest.raises(ValueError, match="module must be the name of a submodule"):
        autodiscover("shop", module="hooks.more")


@pytest.fixture
def tree(site: Site) -> Site:
    """app/ with signals modules at several depths, and subpackages without one."""
    site.write("ledger.py", LEDGER)
    for package in ("app", "app/orders", "app/orders/refunds", "app/users", "app/zzz"):
        site.write(f"{package}/__init__.py")
    for package in ("app", "app/orders/refunds", "app/users", "app/zzz"):
        site.write(f"{package}/signals.py", SIGNALS)
    site.write("app/orders/views.py", "raise AssertionError('only packages are imported')\n")
    return site


def test_recursive_autodiscover_searches_every_subpackage_depth_first(tree: Site) -> None:
    expected = ["app.signals", "app.orders.refunds.signals", "app.users.signals", "app.zzz.signals"]
    assert autodiscover("app", recursive=True) == expected
    assert ledger().runs == expected
    assert "app.orders" in sys.modules  # searched, though it has no signals module itself
    assert "app.orders.views" not in sys.modules
    assert autodiscover("app", recursive=True) == []


def test_without_recursive_subpackages_are_left_alone(tree: Site) -> None:
    assert autodiscover("app") == ["app.signals"]
    assert "app.orders" not in sys.modules


def test_recursive_autodiscover_does_not_search_inside_a_signals_package(site: Site) -> None:
    site.write("ledger.py", LEDGER)
    site.write("big/__init__.py")
    site.write("big/signals/__init__.py", SIGNALS)
    site.write("big/signals/signals.py", SIGNALS)
    assert autodiscover("big", recursive=True) == ["big.signals"]
    assert ledger().runs == ["big.signals"]


def test_recursive_autodiscover_propagates_an_error_in_a_subpackage(tree: Site) -> None:
    tree.write("app/orders/__init__.py", "raise ImportError('orders is misconfigured')\n")
    with pytest.raises(ImportError, match="orders is misconfigured"):
        autodiscover("app", recursive=True)


def test_concurrent_calls_run_the_module_once_and_both_return_after_it_ran(site: Site) -> None:
    site.write("ledger.py", SLOW_LEDGER)
    site.write("slow/__init__.py")
    site.write(
        "slow/signals.py",
        textwrap.dedent(
            """
            import ledger

            ledger.running.set()
            assert ledger.release.wait(timeout=10), "the test never released the module"
            """
        )
        + textwrap.dedent(SIGNALS),  # the receiver connects once the test releases the module
    )
    # Each call returns what it discovered, and how many receivers were connected by then.
    results = called_twice_at_once(lambda: (autodiscover("slow"), len(ledger().ping.connections())))
    assert results == {"first": (["slow.signals"], 1), "second": ([], 1)}
    assert ledger().runs == ["slow.signals"]


# --- load_entry_points ---------------------------------------------------------------------------


def distribution(site: Site, name: str, entry_points: str) -> None:
    """Install (as far as importlib.metadata can tell) a distribution declaring
    ``entry_points`` (the text of entry_points.txt) on the site."""
    info = f"{name.replace('-', '_')}-1.0.dist-info"
    site.write(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    site.write(f"{info}/entry_points.txt", entry_points)


@pytest.fixture
def plugin(site: Site) -> tuple[Site, str, str]:
    """A distribution whose entry points name a module and a callable, under a group and a
    package name unique to the test (what is loaded once stays loaded for the process)."""
    package = f"plugin_{site.tag}"
    group = f"test_{site.tag}.receivers"
    signals_package(
        site,
        package,
        hooks="""
        import ledger


        def connect():
            ledger.runs.append("connect() called")
        """,
    )
    distribution(
        site,
        f"demo-plugin-{site.tag}",
        f"""
        [{group}]
        receivers = {package}.signals
        hooks = {package}.hooks:connect

        [some.other.group]
        ignored = {package}.not_a_module
        """,
    )
    return site, package, group


def test_entry_points_import_modules_and_call_callables_once(
    plugin: tuple[Site, str, str],
) -> None:
    _, package, group = plugin
    assert load_entry_points(group) == [f"{package}.signals", f"{package}.hooks:connect"]
    assert ledger().runs == [f"{package}.signals", "connect() called"]
    assert len(ledger().ping.connections()) == 1
    assert load_entry_points(group) == []
    assert ledger().runs == [f"{package}.signals", "connect() called"]


def test_the_default_group_is_tocsin_receivers(site: Site) -> None:
    package = f"default_{site.tag}"
    signals_package(site, package)
    distribution(site, f"default-{site.tag}", f"[tocsin.receivers]\nmine = {package}.signals\n")
    assert load_entry_points() == [f"{package}.signals"]
    assert ledger().runs == [f"{package}.signals"]


def test_a_group_nobody_declares_loads_nothing(plugin: tuple[Site, str, str]) -> None:
    assert load_entry_points("nobody.declares.this") == []
    assert ledger().runs == []


def test_a_failing_entry_point_names_the_distribution_and_is_chained(site: Site) -> None:
    package = f"failing_{site.tag}"
    group = f"failing_{site.tag}.receivers"
    signals_package(
        site,
        package,
        hooks="""
        def connect():
            raise KeyError("settings.PAYMENT_KEY")


        not_callable = 42
        """,
    )
    distribution(
        site,
        f"shaky-{site.tag}",
        f"""
        [{group}]
        good = {package}.signals
        bad = {package}.hooks:connect
        """,
    )
    with pytest.raises(ImportError) as caught:
        load_entry_points(group)
    message = str(caught.value)
    assert f"entry point 'bad' = '{package}.hooks:connect'" in message
    assert f"of distribution 'shaky-{site.tag}'" in message
    assert f"(group '{group}')" in message
    assert "KeyError: 'settings.PAYMENT_KEY'" in message
    assert isinstance(caught.value.__cause__, KeyError)
    # What loaded before the failure stays loaded, and is not loaded again by a retry;
    # the failed entry point is tried again.
    assert ledger().runs == [f"{package}.signals"]
    with pytest.raises(ImportError, match="'bad'"):
        load_entry_points(group)
    assert ledger().runs == [f"{package}.signals"]


def test_an_entry_point_naming_a_missing_module_or_a_non_callable_fails(site: Site) -> None:
    group = f"odd_{site.tag}.receivers"
    site.write(f"odd_{site.tag}.py", "not_callable = 42\n")
    distribution(site, f"odd-{site.tag}", f"[{group}]\nmissing = no_such_module_{site.tag}\n")
    with pytest.raises(ImportError, match="'missing'") as caught:
        load_entry_points(group)
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)

    other = f"odder_{site.tag}.receivers"
    distribution(site, f"odder-{site.tag}", f"[{other}]\nvalue = odd_{site.tag}:not_callable\n")
    with pytest.raises(ImportError, match="neither a module nor a callable") as caught:
        load_entry_points(other)
    assert isinstance(caught.value.__cause__, TypeError)


def test_an_entry_point_that_loads_its_own_group_does_not_deadlock(site: Site) -> None:
    package = f"eager_{site.tag}"
    group = f"eager_{site.tag}.receivers"
    site.write("ledger.py", LEDGER)
    site.write(
        f"{package}.py",
        f"""
        import ledger
        from tocsin import load_entry_points


        def connect():
            ledger.runs.append(("inner call", load_entry_points({group!r})))
        """,
    )
    distribution(site, f"eager-{site.tag}", f"[{group}]\nhook = {package}:connect\n")
    assert load_entry_points(group) == [f"{package}:connect"]
    assert ledger().runs == [("inner call", [])]


def test_concurrent_loads_call_a_callable_entry_point_once(site: Site) -> None:
    package = f"slowhook_{site.tag}"
    group = f"slowhook_{site.tag}.receivers"
    site.write("ledger.py", SLOW_LEDGER)
    site.write(
        f"{package}.py",
        """
        import ledger


        def connect():
            ledger.runs.append("called")
            ledger.running.set()
            assert ledger.release.wait(timeout=10), "the test never released the hook"
        """,
    )
    distribution(site, f"slowhook-{site.tag}", f"[{group}]\nhook = {package}:connect\n")
    results = called_twice_at_once(lambda: load_entry_points(group))
    assert results == {"first": [f"{package}:connect"], "second": []}
    assert ledger().runs == ["called"]
