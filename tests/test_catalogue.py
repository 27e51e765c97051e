"""tocsin.catalogue: every Django builtin signal, its group, declared arguments and views."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tocsin import Argument, Signal, catalogue
from tocsin.__main__ import main
from tocsin._catalogue_views import describe, format_table, update_page
from tocsin.catalogue import GROUPS, SIGNALS, group_of

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "catalogue.md"

# name: (group, required arguments, optional arguments), in the catalogue's order. Written out
# by hand from Django's signal reference, so that a change to the catalogue must change this too.
EXPECTED: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "user_logged_in": ("auth", ("request", "user"), ()),
    "user_logged_out": ("auth", ("request", "user"), ()),
    "user_login_failed": ("auth", ("credentials", "request"), ()),
    "pre_init": ("model", ("args", "kwargs"), ()),
    "post_init": ("model", ("instance",), ()),
    "pre_save": ("model", ("instance", "raw", "using", "update_fields"), ()),
    "post_save": ("model", ("instance", "created", "raw", "using", "update_fields"), ()),
    "pre_delete": ("model", ("instance", "using", "origin"), ()),
    "post_delete": ("model", ("instance", "using", "origin"), ()),
    "m2m_changed": (
        "model",
        ("instance", "action", "reverse", "model", "pk_set", "using"),
        ("raw",),  # only Django 6.1 and later send it
    ),
    "class_prepared": ("model", (), ()),
    "pre_migrate": (
        "management",
        ("app_config", "verbosity", "interactive", "using"),
        ("stdout", "plan", "apps"),
    ),
    "post_migrate": (
        "management",
        ("app_config", "verbosity", "interactive", "using"),
        ("stdout", "plan", "apps"),
    ),
    "request_started": ("request", (), ("environ", "scope")),
    "request_finished": ("request", (), ()),
    "got_request_exception": ("request", ("request",), ()),
    "setting_changed": ("test", ("setting", "value", "enter"), ()),
    "template_rendered": ("test", ("template", "context"), ()),
    "connection_created": ("db", ("connection",), ()),
    "task_enqueued": ("tasks", ("task_result",), ()),
    "task_started": ("tasks", ("task_result",), ()),
    "task_finished": ("tasks", ("task_result",), ()),
    "autoreload_started": ("autoreload", (), ()),
    "file_changed": ("autoreload", ("file_path",), ()),
}

# Where Django defines each signal. The tasks signals arrived in Django 6.0.
DJANGO_MODULES = {
    "django.contrib.auth.signals": ("user_logged_in", "user_logged_out", "user_login_failed"),
    "django.db.models.signals": (
        "pre_init",
        "post_init",
        "pre_save",
        "post_save",
        "pre_delete",
        "post_delete",
        "m2m_changed",
        "class_prepared",
        "pre_migrate",
        "post_migrate",
    ),
    "django.core.signals": (
        "request_started",
        "request_finished",
        "got_request_exception",
        "setting_changed",
    ),
    "django.test.signals": ("setting_changed", "template_rendered"),
    "django.db.backends.signals": ("connection_created",),
    "django.utils.autoreload": ("autoreload_started", "file_changed"),
    "django.tasks.signals": ("task_enqueued", "task_started", "task_finished"),
}


def all_arguments(signal: Signal) -> dict[str, object]:
    """A value for every declared argument (request_started takes one of its two)."""
    names = ("environ",) if signal is catalogue.request_started else signal.arguments
    return {name: object() for name in names}


# --- names, groups, arguments ------------------------------------------------------------------


def test_signals_lists_every_builtin_signal_in_reference_order() -> None:
    assert list(SIGNALS) == list(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_each_signal_is_a_module_attribute_named_as_in_django(name: str) -> None:
    signal = getattr(catalogue, name)
    assert isinstance(signal, Signal)
    assert signal is SIGNALS[name]
    assert signal.name == name


@pytest.mark.parametrize("name", EXPECTED)
def test_each_signal_has_its_group(name: str) -> None:
    assert group_of(SIGNALS[name]) == EXPECTED[name][0]


@pytest.mark.parametrize("name", EXPECTED)
def test_each_signal_declares_the_arguments_django_sends(name: str) -> None:
    _, required, optional = EXPECTED[name]
    specs = SIGNALS[name].argument_specs
    assert specs is not None
    assert tuple(spec.name for spec in specs if not spec.optional) == required
    assert tuple(spec.name for spec in specs if spec.optional) == optional


def test_migrate_signals_declare_arguments_in_djangos_order() -> None:
    order = ("app_config", "verbosity", "interactive", "stdout", "using", "plan", "apps")
    assert catalogue.pre_migrate.arguments == order
    assert catalogue.post_migrate.arguments == order


def test_signals_without_arguments_declare_none_rather_than_nothing() -> None:
    for signal in (catalogue.class_prepared, catalogue.request_finished):
        assert signal.argument_specs == ()
        assert signal.arguments == ()


@pytest.mark.parametrize("name", EXPECTED)
def test_each_signal_and_argument_is_described(name: str) -> None:
    signal = SIGNALS[name]
    assert signal.doc is not None
    assert signal.doc.startswith("Sent ")
    assert "sender" in signal.doc
    assert signal.__doc__ == signal.doc
    for spec in signal.argument_specs or ():
        assert spec.doc.endswith("."), spec


def test_groups_hold_every_signal_once_in_catalogue_order() -> None:
    assert list(GROUPS) == [
        "auth",
        "model",
        "management",
        "request",
        "test",
        "db",
        "tasks",
        "autoreload",
    ]
    assert [name for names in GROUPS.values() for name in names] == list(SIGNALS)


def test_group_of_rejects_a_signal_outside_the_catalogue_even_with_a_catalogue_name() -> None:
    impostor = Signal(name="pre_save", arguments=catalogue.pre_save.argument_specs)
    with pytest.raises(ValueError, match=r"not a tocsin\.catalogue signal"):
        group_of(impostor)
    with pytest.raises(ValueError, match=r"not a tocsin\.catalogue signal"):
        group_of(Signal())


def test_m2m_actions_are_exported_as_constants() -> None:
    assert catalogue.M2M_ACTIONS == (
        catalogue.PRE_ADD,
        catalogue.POST_ADD,
        catalogue.PRE_REMOVE,
        catalogue.POST_REMOVE,
        catalogue.PRE_CLEAR,
        catalogue.POST_CLEAR,
    )
    assert catalogue.M2M_ACTIONS == (
        "pre_add",
        "post_add",
        "pre_remove",
        "post_remove",
        "pre_clear",
        "post_clear",
    )


@pytest.mark.parametrize(("module_name", "names"), DJANGO_MODULES.items())
def test_names_match_the_signals_django_defines(module_name: str, names: tuple[str, ...]) -> None:
    pytest.importorskip("django")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        pytest.skip(f"{module_name} is not in this Django version")
    for name in names:
        assert name in SIGNALS
        assert type(getattr(module, name)).__name__ in {"Signal", "ModelSignal"}


# --- every catalogue signal is strict-capable -------------------------------------------------


@pytest.mark.usefixtures("strict_everywhere")
@pytest.mark.parametrize("name", EXPECTED)
def test_each_signal_is_checked_in_strict_mode(name: str) -> None:
    signal = SIGNALS[name]
    assert signal.strict
    signal.send(None, **all_arguments(signal))
    with pytest.raises(TypeError, match=f"'{name}'.*'not_an_argument'"):
        signal.send(None, not_an_argument=1, **all_arguments(signal))


@pytest.mark.usefixtures("strict_everywhere")
@pytest.mark.parametrize("name", [n for n, (_, required, _) in EXPECTED.items() if required])
def test_each_required_argument_is_enforced_in_strict_mode(name: str) -> None:
    signal = SIGNALS[name]
    first_required = EXPECTED[name][1][0]
    arguments = all_arguments(signal)
    del arguments[first_required]
    with pytest.raises(TypeError, match=f"missing the required argument '{first_required}'"):
        signal.send(None, **arguments)


@pytest.mark.usefixtures("strict_everywhere")
def test_request_started_accepts_either_environ_or_scope() -> None:
    catalogue.request_started.send(object, environ={})
    catalogue.request_started.send(object, scope={"type": "http"})


@pytest.mark.usefixtures("strict_everywhere")
@pytest.mark.parametrize(
    ("arguments", "got"), [({}, "neither"), ({"environ": {}, "scope": {}}, "both")]
)
def test_request_started_wants_exactly_one_of_environ_and_scope(
    arguments: dict[str, object], got: str
) -> None:
    calls: list[object] = []

    def listen(**kwargs: object) -> None:
        calls.append(kwargs)

    catalogue.request_started.connect(listen)
    try:
        with pytest.raises(TypeError, match=f"exactly one of 'environ'.*got {got}"):
            catalogue.request_started.send(object, **arguments)
    finally:
        catalogue.request_started.disconnect(listen)
    assert calls == []


def test_request_started_is_not_checked_outside_strict_mode() -> None:
    assert catalogue.request_started.send(object) == []


@pytest.mark.usefixtures("strict_everywhere")
def test_strict_mode_hints_at_the_real_name_of_a_misspelt_catalogue_argument() -> None:
    with pytest.raises(TypeError, match="did you mean 'update_fields'"):
        catalogue.pre_save.send(
            object, instance=object(), raw=False, using="default", updated_fields=None
        )


# --- describe(): the catalogue as plain data --------------------------------------------------


def test_describe_round_trips_through_json() -> None:
    described = describe()
    assert json.loads(json.dumps(described)) == described


def test_describe_rebuilds_each_signals_declared_arguments() -> None:
    for description in describe():
        signal = SIGNALS[description["name"]]
        assert description["group"] == group_of(signal)
        assert description["doc"] == signal.doc
        rebuilt = tuple(Argument(**argument) for argument in description["arguments"])
        assert rebuilt == signal.argument_specs


def test_describe_one_group_keeps_its_order() -> None:
    assert [d["name"] for d in describe("tasks")] == [
        "task_enqueued",
        "task_started",
        "task_finished",
    ]


def test_describe_rejects_an_unknown_group_and_names_the_real_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown signal group 'models'.*auth, model"):
        describe("models")


# --- format_table(): the terminal view --------------------------------------------------------


@pytest.mark.parametrize("width", [80, 100, 160])
def test_table_fits_the_terminal_width(width: int) -> None:
    table = format_table(describe(), width)
    assert max(len(line) for line in table.splitlines()) <= width


def test_table_shows_every_signal_group_and_bracketed_optional_arguments() -> None:
    table = format_table(describe(), 200)
    for name, (group, _, _) in EXPECTED.items():
        row = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert group in row
    assert "[stdout]" in table
    assert "[environ], [scope]" in table
    assert "[name]: optional argument" in table


def test_table_starts_with_a_header() -> None:
    header = format_table(describe("db"), 100).splitlines()[0]
    assert header.split() == ["SIGNAL", "GROUP", "ARGUMENTS", "WHEN", "IT", "IS", "SENT"]


# --- the command line ----------------------------------------------------------------------------


def test_cli_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalogue"]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert name in out


def test_cli_json_is_the_described_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalogue", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == describe()


def test_cli_group_limits_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalogue", "--group", "auth", "--json"]) == 0
    assert [d["name"] for d in json.loads(capsys.readouterr().out)] == list(GROUPS["auth"])
    assert main(["catalogue", "--group", "auth"]) == 0
    out = capsys.readouterr().out
    assert "user_login_failed" in out
    assert "pre_save" not in out


def test_cli_unknown_group_fails_with_the_list_of_groups(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["catalogue", "--group", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "unknown signal group 'nope'" in captured.err
    assert ", ".join(GROUPS) in captured.err


def test_cli_help_names_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["catalogue", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for group in GROUPS:
        assert group in help_text


def test_cli_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tocsin", "catalogue", "--group", "db", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == describe("db")


# --- docs/catalogue.md ---------------------------------------------------------------------------


def test_docs_reference_is_generated_from_the_catalogue() -> None:
    page = DOCS_PAGE.read_text(encoding="utf-8")
    assert update_page(page) == page, (
        "docs/catalogue.md is out of date: run "
        "python -m tocsin catalogue --update-page docs/catalogue.md"
    )


def test_docs_reference_covers_every_signal_and_argument() -> None:
    page = DOCS_PAGE.read_text(encoding="utf-8")
    for name, (_, required, optional) in EXPECTED.items():
        assert f"### `{name}(" in page
        for argument in required + optional:
            assert f"| `{argument}` |" in page


def test_docs_answer_each_open_question_of_the_notes() -> None:
    page = DOCS_PAGE.read_text(encoding="utf-8")
    for heading in (
        "### What does `weak` do?",
        "### What is `dispatch_uid` for?",
        "### What does `raw` mean?",
        "### What does `m2m_changed` send?",
        "### What is `setting_changed` sent with, and when?",
        "### Which exceptions does `got_request_exception` report?",
        "### Wiring receivers without `AppConfig.ready()`",
    ):
        assert heading in page
    for action in catalogue.M2M_ACTIONS:
        assert f"| `{action}` |" in page


def test_update_page_refuses_a_page_without_markers() -> None:
    with pytest.raises(ValueError, match="no generated part"):
        update_page("# A page\n")


def test_regenerate_command_rewrites_only_the_generated_part(tmp_path: Path) -> None:
    page = tmp_path / "catalogue.md"
    stale = DOCS_PAGE.read_text(encoding="utf-8").replace("`pre_save(", "`pre_saved(")
    page.write_text(stale, encoding="utf-8")
    command = [sys.executable, "-m", "tocsin", "catalogue", "--update-page", str(page)]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "regenerated" in first.stdout
    assert first.stderr == ""
    assert page.read_text(encoding="utf-8") == DOCS_PAGE.read_text(encoding="utf-8")
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "already up to date" in second.stdout
