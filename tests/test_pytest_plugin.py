"""The pytest plugin, run through pytest's own ``pytester``: the tocsin_capture fixture, the
tocsin_muted marker, the leak check, and the examples of docs/testing.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parents[1] / "docs" / "testing.md"


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose runs are as strict as this project's own."""
    pytester.makeini(
        """
        [pytest]
        addopts = --strict-markers -p no:cacheprovider
        filterwarnings = error
        """
    )
    return pytester


# -- registration ----------------------------------------------------------------------------


def test_the_plugin_is_loaded_from_the_entry_point_and_rewrites_tocsin_testing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import tocsin.testing

        def test_loaded(tocsin_capture, pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("tocsin")
            loader = type(tocsin.testing.__loader__).__name__
            assert loader == "AssertionRewritingHook", loader
        """
    )
    # In a fresh process: the plugin must come from the installed entry point.
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_the_plugin_can_be_disabled_by_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses(tocsin_capture):\n    pass\n")
    result = pytester.runpytest("-p", "no:tocsin")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'tocsin_capture' not found*"])


# -- the tocsin_capture fixture --------------------------------------------------------------


def test_tocsin_capture_records_every_signal_during_the_test_only(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from tocsin import Signal
        from tocsin.catalogue import request_finished

        paid = Signal(name="paid")
        kept = []

        def test_records(tocsin_capture):
            paid.send("shop", order=1)
            request_finished.send(None)
            created = Signal(name="created_in_the_test")
            created.send(None)
            assert [s.signal for s in tocsin_capture] == [paid, request_finished, created]
            assert tocsin_capture.assert_sent(paid, sender="shop").kwargs == {"order": 1}
            kept.append(tocsin_capture)

        def test_recording_stopped_with_the_test():
            paid.send("shop", order=2)
            assert len(kept[0]) == 3
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_a_failed_assertion_shows_what_was_sent_in_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from tocsin import Signal

        paid = Signal(name="paid")

        def test_checkout(tocsin_capture):
            paid.send("shop", order=42, total=9.5)
            tocsin_capture.assert_sent(paid, order=42, total=10.0)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * AssertionError: <Signal 'paid'> with order=42, total=10.0 was not sent.",
            "E * Near miss [[]0]: total was 9.5, not 10.0.",
            "E * What was sent (1):",
            "E *   [[]0] <Signal 'paid'>.send(sender='shop', order=42, total=9.5)",
        ]
    )


# -- the tocsin_muted marker -----------------------------------------------------------------


def test_the_marker_mutes_its_signals_from_setup_to_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from tocsin import Signal

        quiet, loud = Signal(name="quiet"), Signal(name="loud")
        heard = []

        def hear(signal, sender, **kwargs):
            heard.append((signal.name, sender))

        quiet.connect(hear)
        loud.connect(hear)

        @pytest.fixture
        def data():
            quiet.send("setup")
            yield
            quiet.send("teardown")

        @pytest.mark.tocsin_muted(quiet)
        def test_muted(data, tocsin_capture):
            quiet.send("call")
            loud.send("call")
            assert heard == [("loud", "call")]
            tocsin_capture.assert_sent(quiet, sender="call")  # still recorded

        def test_heard_again_afterwards():
            assert heard == [("loud", "call")]  # nothing from the muted test's teardown
            quiet.send("later")
            assert heard[-1] == ("quiet", "later")
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_the_marker_without_signals_mutes_every_signal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from tocsin import Signal
        from tocsin.catalogue import request_finished

        mine = Signal(name="mine")
        heard = []

        def hear(signal, **kwargs):
            heard.append(signal.name)

        mine.connect(hear)
        request_finished.connect(hear)

        @pytest.mark.tocsin_muted
        def test_everything_muted():
            mine.send(None)
            request_finished.send(None)
            assert heard == []

        @pytest.mark.tocsin_muted()
        class TestOnAClass:
            def test_muted_too(self):
                mine.send(None)
                assert heard == []

        def test_afterwards():
            mine.send(None)
            request_finished.send(None)
            request_finished.disconnect(hear)
            assert heard == ["mine", "request_finished"]
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_the_marker_refuses_what_is_not_a_signal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tocsin_muted("post_save")
        def test_by_name():
            pass

        @pytest.mark.tocsin_muted(signals=[])
        def test_by_keyword():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*tocsin_muted: muted() takes signals; argument 1 is 'post_save' (str)*",
            "*tocsin_muted takes signals only; got the keyword arguments signals*",
        ]
    )


def test_the_marker_is_listed(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.tocsin_muted(*signals): *"])


# -- the leak check --------------------------------------------------------------------------

LEAKY = """
from tocsin import Signal

cart_changed = Signal(name="cart_changed")


def test_leaves_a_receiver():
    def remember(sender, **kwargs):
        pass

    cart_changed.connect(remember, weak=False)
"""


def one_leak_reported(pytester: pytest.Pytester, source: str, *options: str) -> pytest.LineMatcher:
    """Run ``source``, a test file whose one test passes but leaves a receiver connected, with
    ``options``; check that the leak check failed that test at teardown. Returns pytest's
    output, to match the report against."""
    pytester.makepyfile(source)
    result = pytester.runpytest(*options)
    result.assert_outcomes(passed=1, errors=1)
    return result.stdout


def test_leaks_are_not_checked_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(LEAKY)
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_leak_option_fails_a_test_naming_signal_and_receiver(
    pytester: pytest.Pytester,
) -> None:
    one_leak_reported(pytester, LEAKY, "--tocsin-leaks").fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_receiver*",
            "test_the_leak_option_fails_a_test_naming_signal_and_receiver.py::"
            "test_leaves_a_receiver left a receiver connected (--tocsin-leaks):",
            "  <Signal 'cart_changed'>: "
            "test_the_leak_option_fails_a_test_naming_signal_and_receiver."
            "test_leaves_a_receiver.<locals>.remember (any sender)",
            "Disconnect it before the test ends: *",
        ]
    )


def test_the_leak_check_can_be_turned_on_in_the_configuration(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        tocsin_leaks = true
        filterwarnings = error
        """
    )
    one_leak_reported(pytester, LEAKY).fnmatch_lines(["*left a receiver connected*"])


def test_the_leak_check_names_each_leak_with_its_sender_and_uid(
    pytester: pytest.Pytester,
) -> None:
    source = """
        from tocsin import Signal

        first, second = Signal(name="first"), Signal(name="second")

        class Listener:
            def on(self, **kwargs):
                pass

        listener = Listener()

        def handler(**kwargs):
            pass

        first.connect(handler)  # before the test: not a leak

        def test_leaks():
            first.connect(handler, sender="orders")  # same receiver, another sender
            second.connect(listener.on, dispatch_uid="uid")
        """
    one_leak_reported(pytester, source, "--tocsin-leaks").fnmatch_lines(
        [
            "*::test_leaks left 2 receivers connected (--tocsin-leaks):",
            "  <Signal 'first'>: *.handler (sender 'orders')",
            "  <Signal 'second'>: *.Listener.on of <*Listener object at *>"
            " (any sender, dispatch_uid 'uid')",
            "Disconnect them before the test ends: *",
        ]
    )


def test_the_leak_check_compares_receivers_by_identity_not_by_appearance(
    pytester: pytest.Pytester,
) -> None:
    source = """
        from tocsin import Signal

        signal = Signal(name="s")

        class Handler:
            def __call__(self, **kwargs):
                pass

            def __repr__(self):
                return "Handler()"

        old = Handler()
        signal.connect(old, weak=False)

        def test_swaps_the_handler():
            signal.disconnect(old)
            signal.connect(Handler(), weak=False)  # looks the same, is not
        """
    report = one_leak_reported(pytester, source, "--tocsin-leaks")
    report.fnmatch_lines(["  <Signal 's'>: Handler() (any sender)"])


def test_the_leak_check_lets_pass_what_is_cleaned_up_or_was_there(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import gc
        import pytest
        from tocsin import Signal

        signal = Signal(name="s")

        def existing(**kwargs):
            pass

        signal.connect(existing)

        @pytest.fixture
        def connected():
            def temporary(**kwargs):
                pass
            signal.connect(temporary, weak=False)
            yield
            signal.disconnect(temporary)

        def test_cleaned_up_by_a_fixture(connected):
            pass

        def test_connected_for_a_block():
            with signal.connected_to(lambda **kwargs: None):
                signal.send(None)

        def test_disconnecting_is_no_leak():
            signal.disconnect(existing)

        def test_a_weak_receiver_dies_with_the_test():
            def local(**kwargs):
                pass
            signal.connect(local)
            signal.send(None)

        def test_a_weak_receiver_in_a_cycle_dies_at_the_check():
            class Cyclic:
                def __call__(self, **kwargs):
                    pass
            receiver = Cyclic()
            receiver.me = receiver
            signal.connect(receiver)
            signal.send(None)

        def test_a_signal_that_dies_with_the_test_takes_its_receivers():
            local = Signal()
            local.connect(existing, weak=False)
        """
    )
    pytester.runpytest("--tocsin-leaks").assert_outcomes(passed=6)


def test_the_leak_check_reports_what_a_function_fixture_leaves(pytester: pytest.Pytester) -> None:
    source = """
        import pytest
        from tocsin import Signal

        signal = Signal(name="s")

        def kept(**kwargs):
            pass

        @pytest.fixture
        def connected():
            signal.connect(kept)

        def test_uses_it(connected):
            pass
        """
    report = one_leak_reported(pytester, source, "--tocsin-leaks")
    report.fnmatch_lines(["  <Signal 's'>: *.kept (any sender)"])


def test_the_leak_check_leaves_wider_fixtures_their_receivers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from tocsin import Signal

        signal = Signal(name="s")

        def for_the_module(**kwargs):
            pass

        def for_the_session(**kwargs):
            pass

        @pytest.fixture(scope="module")
        def module_receiver():
            signal.connect(for_the_module)
            yield
            signal.disconnect(for_the_module)

        @pytest.fixture(scope="session")
        def session_receiver():
            signal.connect(for_the_session)  # never disconnected: the session owns it

        def test_first(module_receiver, session_receiver):
            pass

        def test_second(module_receiver, session_receiver):
            pass

        def test_last(module_receiver):
            signal.connect(for_the_session, sender="own")  # the test's own: a leak
        """
    )
    result = pytester.runpytest("--tocsin-leaks")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_last*", "*(sender 'own')"])


def test_a_failed_test_is_not_also_reported_for_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from tocsin import Signal

        signal = Signal(name="s")

        def test_fails_before_cleaning_up():
            def local(**kwargs):
                pass
            signal.connect(local, weak=False)
            assert False, "the test's own failure"
        """
    )
    result = pytester.runpytest("--tocsin-leaks")
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*left a receiver connected*")


# -- the examples of docs/testing.md ---------------------------------------------------------

_MARKED_BLOCK = re.compile(
    r"<!-- (test file|output of): ([^\n]*?) -->\n```\w+\n(.*?)^```", re.S | re.M
)


def doc_blocks() -> dict[tuple[str, str], list[str]]:
    """The blocks of the page marked as part of a test file, or as the output of a command."""
    blocks: dict[tuple[str, str], list[str]] = {}
    for kind, name, body in _MARKED_BLOCK.findall(DOCS.read_text(encoding="utf-8")):
        blocks.setdefault((kind, name), []).append(body)
    return blocks


def test_the_test_files_shown_in_the_docs_pass(pytester: pytest.Pytester) -> None:
    blocks = doc_blocks()
    pytester.makepyfile(test_shop="\n\n".join(blocks[("test file", "test_shop.py")]))
    # In a fresh process: the shop connects receivers to the catalogue's post_save.
    result = pytester.runpytest_subprocess("--tocsin-leaks")
    result.assert_outcomes(passed=5)


def test_the_leak_shown_in_the_docs_is_reported_as_shown(pytester: pytest.Pytester) -> None:
    blocks = doc_blocks()
    pytester.makepyfile(test_cart="\n\n".join(blocks[("test file", "test_cart.py")]))
    [output] = blocks[("output of", "pytest --tocsin-leaks test_cart.py")]
    result = pytester.runpytest("--tocsin-leaks", "test_cart.py")
    result.assert_outcomes(passed=1, errors=1)
    expected = []
    for line in output.splitlines():
        if not line or line.startswith("$") or line == "...":
            continue
        # Rules of _ and = and runs of spaces stretch with the terminal; timings vary.
        pattern = re.sub(r"^[_=]+ | [_=]+$| {2,}", "*", line.replace("[", "[[]"))
        expected.append(re.sub(r"in [\d.]+s", "in *s", pattern))
    result.stdout.fnmatch_lines(expected)
