"""tocsin._modules: a receiver module imported under two names is reported, and nothing else.

The packages are built in a fresh directory on sys.path (the ``site`` fixture in conftest.py).
Their receivers connect to ``ledger.ping``, a signal of the site's own ``ledger`` module.
"""

from __future__ import annotations

import gc
import importlib
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import tocsin
from tocsin import DuplicateReceiverWarning, Signal

if TYPE_CHECKING:
    from conftest import Site

LEDGER = """
    from tocsin import Signal

    ping = Signal(name="ping")
"""

HANDLERS = """
    import ledger
    from tocsin import receiver


    @receiver(ledger.ping)
    def first(sender, **kwargs):
        return __name__


    @receiver(ledger.ping)
    def second(sender, **kwargs):
        return __name__
"""


def ping() -> Signal:
    signal: Signal = importlib.import_module("ledger").ping
    return signal


def import_recording(name: str) -> list[warnings.WarningMessage]:
    """Import ``name``; return the DuplicateReceiverWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.import_module(name)
    return [w for w in caught if issubclass(w.category, DuplicateReceiverWarning)]


@pytest.fixture
def app(site: Site) -> Path:
    """app/handlers.py, with two receivers of ledger.ping; returns the app directory."""
    site.write("ledger.py", LEDGER)
    site.write("app/__init__.py")
    site.write("app/handlers.py", HANDLERS)
    return site.root / "app"


def put_on_path(directory: Path) -> None:
    """Make the modules in ``directory`` importable by their bare names (the site fixture
    takes every entry under its root off sys.path afterwards)."""
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()


def test_the_warning_is_public() -> None:
    assert tocsin.DuplicateReceiverWarning is DuplicateReceiverWarning
    assert issubclass(DuplicateReceiverWarning, UserWarning)


def test_a_module_imported_under_two_names_warns_naming_both(app: Path) -> None:
    assert import_recording("app.handlers") == []
    put_on_path(app)
    [warning] = import_recording("handlers")  # once, though two receivers are connected
    message = str(warning.message)
    assert "as module 'app.handlers' and as module 'handlers'" in message
    assert str(app / "handlers.py") in message
    assert "handlers.first connected to <Signal 'ping'>" in message
    assert "dispatch_uid" in message  # says how to fix it
    # The warning points at the receiver's definition in the module imported twice.
    assert warning.filename == str(app / "handlers.py")
    assert warning.lineno == 6
    # A warning, not a refusal: both copies are connected, as they would be without tocsin.
    assert sorted(response for _, response in ping().send(sender=None)) == [
        "app.handlers",
        "app.handlers",
        "handlers",
        "handlers",
    ]


def test_each_pair_of_names_is_reported_once(app: Path) -> None:
    importlib.import_module("app.handlers")
    put_on_path(app)
    assert len(import_recording("handlers")) == 1
    handlers: Any = sys.modules["handlers"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ping().connect(handlers.first, sender="another sender")
    assert caught == []


def test_as_an_error_the_duplicate_connection_is_refused(app: Path) -> None:
    importlib.import_module("app.handlers")
    put_on_path(app)
    for _ in range(2):  # every attempt fails, not just the first
        with warnings.catch_warnings():
            warnings.simplefilter("error", DuplicateReceiverWarning)
            with pytest.raises(DuplicateReceiverWarning, match="imported twice"):
                importlib.import_module("handlers")
        assert "handlers" not in sys.modules
        modules = {receiver.__module__ for receiver in ping().receivers_for(None)}
        assert modules == {"app.handlers"}


def test_a_dispatch_uid_is_the_explicit_fix_and_is_not_reported(site: Site) -> None:
    site.write("ledger.py", LEDGER)
    site.write("app/__init__.py")
    site.write(
        "app/handlers.py",
        """
        import ledger
        from tocsin import receiver


        @receiver(ledger.ping, dispatch_uid="app.handlers.audit")
        def audit(sender, **kwargs):
            return __name__
        """,
    )
    importlib.import_module("app.handlers")
    put_on_path(site.root / "app")
    assert import_recording("handlers") == []
    assert ping().send(sender=None) == [(sys.modules["app.handlers"].audit, "app.handlers")]


def test_receivers_made_by_one_def_do_not_warn(site: Site) -> None:
    site.write("ledger.py", LEDGER)
    site.write(
        "factory.py",
        """
        import ledger


        def make(tag):
            def handler(sender, **kwargs):
                return tag

            return handler


        handlers = [make(tag) for tag in range(50)]
        for handler in handlers:
            ledger.ping.connect(handler)
        """,
    )
    assert import_recording("factory") == []
    assert len(ping().send(sender=None)) == 50


def test_a_wraps_wrapper_from_another_module_does_not_warn(site: Site) -> None:
    site.write("ledger.py", LEDGER)
    site.write(
        "decorators.py",
        """
        import functools  # noqa: F401


        def logged(function):
            @functools.wraps(function)  # copies __module__ and __qualname__ from function
            def wrapper(*args, **kwargs):
                return function(*args, **kwargs)

            return wrapper
        """,
    )
    for name in ("orders", "users"):
        site.write(
            f"{name}.py",
            """
            import ledger
            from decorators import logged
            from tocsin import receiver


            @receiver(ledger.ping)
            @logged
            def handler(sender, **kwargs):
                return __name__
            """,
        )
    assert import_recording("orders") == []
    assert import_recording("users") == []
    wrappers = ping().receivers_for(None)
    assert [w.__module__ for w in wrappers] == ["orders", "users"]  # as functools.wraps says
    assert sorted(response for _, response in ping().send(sender=None)) == ["orders", "users"]


def test_code_run_by_exec_does_not_warn(app: Path) -> None:
    importlib.import_module("app.handlers")
    source = textwrap.dedent(HANDLERS)
    real_file = str(app / "handlers.py")
    namespaces: list[tuple[str, dict[str, Any]]] = [
        # A "<string>" file in a namespace that claims the module's file and another name.
        ("<string>", {"__name__": "generated", "__file__": real_file}),
        # The module's own file name, in a namespace that is no module's.
        (real_file, {"__name__": "generated"}),
        # No name at all.
        ("<string>", {}),
    ]
    for filename, namespace in namespaces:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(compile(source, filename, "exec"), namespace)
        assert caught == [], (filename, namespace)
    assert len(ping().connections()) == 2 + 2 * len(namespaces)
    ping().send(sender=None)  # the exec'd receivers die with their namespaces: they have run


def test_reload_under_the_same_name_does_not_warn(app: Path) -> None:
    handlers = importlib.import_module("app.handlers")
    ping().send(sender=None)  # the receivers reload replaces have run once: they may go quietly
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.reload(handlers)
        gc.collect()
    assert caught == []
    assert [response for _, response in ping().send(sender=None)] == ["app.handlers"] * 2


def test_a_module_unloaded_then_imported_under_another_name_does_not_warn(app: Path) -> None:
    importlib.import_module("app.handlers")
    ping().send(sender=None)
    del sys.modules["app.handlers"]
    del sys.modules["app"].handlers
    gc.collect()  # the first copy and its receivers are gone
    assert ping().connections() == []
    put_on_path(app)
    assert import_recording("handlers") == []
    assert [response for _, response in ping().send(sender=None)] == ["handlers"] * 2


def test_the_same_file_reached_through_a_symbolic_link_is_recognised(app: Path) -> None:
    os.symlink(app, app.parent / "alias", target_is_directory=True)
    importlib.import_module("app.handlers")
    [warning] = import_recording("alias.handlers")
    assert "as module 'app.handlers' and as module 'alias.handlers'" in str(warning.message)


def test_different_files_with_the_same_module_name_do_not_warn(site: Site) -> None:
    site.write("ledger.py", LEDGER)
    site.write("one/__init__.py")
    site.write("one/handlers.py", HANDLERS)
    site.write("two/__init__.py")
    site.write("two/handlers.py", HANDLERS)
    assert import_recording("one.handlers") == []
    assert import_recording("two.handlers") == []


def test_a_script_that_imports_itself_by_name_is_reported(tmp_path: Path) -> None:
    """The classic: `python shop.py` runs it as __main__, and `import shop` runs it again."""
    (tmp_path / "shop.py").write_text(
        textwrap.dedent(
            """
            from tocsin import Signal, receiver

            if __name__ == "__main__":
                import shop  # the second copy connects its receiver to its own signal...

                order_placed = shop.order_placed  # ...so share one, as real code would
            else:
                order_placed = Signal(name="order_placed")


            @receiver(order_placed)
            def send_receipt(sender, **kwargs):
                return __name__


            if __name__ == "__main__":
                print(sorted(response for _, response in order_placed.send(sender=None)))
            """
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "shop.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == "['__main__', 'shop']\n"
    assert "DuplicateReceiverWarning" in result.stderr
    assert "as module 'shop' and as module '__main__'" in result.stderr
