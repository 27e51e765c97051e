"""Every signal Django ships, as a tocsin ``Signal`` with its group and declared arguments.

Each signal is a module-level name spelled as in Django (``tocsin.catalogue.pre_save`` stands
for ``django.db.models.signals.pre_save``), declares the keyword arguments the newest Django
release sends with it, each described in one line, and carries a docstring saying when it is
sent and what the sender is. Because every signal declares its arguments, each one can be
checked in strict mode.

``SIGNALS`` maps each name to its signal and ``GROUPS`` maps each group (auth, model, ...) to
the names in it, both in the order of Django's signal reference. This module is data only:
``python -m tocsin catalogue`` presents it (see ``tocsin._catalogue_views``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tocsin.arguments import Argument
from tocsin.dispatcher import Signal

__all__ = [
    "GROUPS",
    "M2M_ACTIONS",
    "POST_ADD",
    "POST_CLEAR",
    "POST_REMOVE",
    "PRE_ADD",
    "PRE_CLEAR",
    "PRE_REMOVE",
    "SIGNALS",
    "autoreload_started",
    "class_prepared",
    "connection_created",
    "file_changed",
    "got_request_exception",
    "group_of",
    "m2m_changed",
    "post_delete",
    "post_init",
    "post_migrate",
    "post_save",
    "pre_delete",
    "pre_init",
    "pre_migrate",
    "pre_save",
    "request_finished",
    "request_started",
    "setting_changed",
    "task_enqueued",
    "task_finished",
    "task_started",
    "template_rendered",
    "user_logged_in",
    "user_logged_out",
    "user_login_failed",
]

# The values m2m_changed sends as ``action``: each change is announced before and after.
PRE_ADD: Final = "pre_add"
POST_ADD: Final = "post_add"
PRE_REMOVE: Final = "pre_remove"
POST_REMOVE: Final = "post_remove"
PRE_CLEAR: Final = "pre_clear"
POST_CLEAR: Final = "post_clear"
M2M_ACTIONS: Final = (PRE_ADD, POST_ADD, PRE_REMOVE, POST_REMOVE, PRE_CLEAR, POST_CLEAR)


def _declare(name: str, doc: str, *arguments: Argument) -> Signal:
    """Build one catalogue signal; an empty ``arguments`` still declares "no arguments"."""
    return Signal(name=name, doc=doc, arguments=arguments)


def _optional(name: str, doc: str) -> Argument:
    return Argument(name, doc, optional=True)


# Wording shared by several signals, kept in one place so the descriptions cannot drift apart.
_USING = "The alias of the database in use."
_RAW = (
    "True when the object is stored exactly as given, as when loading a fixture; the "
    "database may then be half loaded, so receivers should leave other records alone."
)
_UPDATE_FIELDS = (
    "The field names passed to save(update_fields=...), as a frozenset, or None when "
    "save() writes every field."
)
_ORIGIN = (
    "Where the deletion started: the model instance or the queryset whose delete() was "
    "called. It differs from instance for cascades and bulk deletes."
)
_TASK_BACKEND = "The sender is the task backend class."


# --- auth: sent by django.contrib.auth --------------------------------------------------------

user_logged_in = _declare(
    "user_logged_in",
    "Sent by login() once a user is authenticated and attached to the session. "
    "The sender is the user's class.",
    Argument("request", "The HttpRequest the user logged in with."),
    Argument("user", "The user who has just logged in."),
)
user_logged_out = _declare(
    "user_logged_out",
    "Sent by logout() just before the session is flushed. The sender is the user's class "
    "(NoneType when nobody was logged in).",
    Argument("request", "The HttpRequest the user logged out with."),
    Argument("user", "The user who is logging out, or None if the request had no logged-in user."),
)
user_login_failed = _declare(
    "user_login_failed",
    "Sent by authenticate() when no authentication backend accepts the credentials. "
    "The sender is the name of the module that checked them.",
    Argument(
        "credentials",
        "The keyword arguments given to authenticate(), with sensitive values such as "
        "passwords masked.",
    ),
    Argument("request", "The HttpRequest given to authenticate(), or None if there was none."),
)

# --- model: sent by the model layer -----------------------------------------------------------

pre_init = _declare(
    "pre_init",
    "Sent when a model is instantiated, before its __init__() does any work. "
    "The sender is the model class.",
    Argument("args", "The positional arguments given to __init__()."),
    Argument("kwargs", "The keyword arguments given to __init__(), as a dict."),
)
post_init = _declare(
    "post_init",
    "Sent when a model's __init__() has finished. The sender is the model class.",
    Argument("instance", "The instance that has just been initialised."),
)
pre_save = _declare(
    "pre_save",
    "Sent at the start of save(), before anything is written. The sender is the model class.",
    Argument("instance", "The object about to be saved."),
    Argument("raw", _RAW),
    Argument("using", _USING),
    Argument("update_fields", _UPDATE_FIELDS),
)
post_save = _declare(
    "post_save",
    "Sent at the end of save(), once the record is written. The sender is the model class.",
    Argument("instance", "The object that was saved."),
    Argument("created", "True if the save inserted a new record, False if it updated one."),
    Argument("raw", _RAW),
    Argument("using", _USING),
    Argument("update_fields", _UPDATE_FIELDS),
)
pre_delete = _declare(
    "pre_delete",
    "Sent before an object is deleted, by Model.delete() and, once per object, by "
    "QuerySet.delete(). The sender is the model class.",
    Argument("instance", "The object about to be deleted."),
    Argument("using", _USING),
    Argument("origin", _ORIGIN),
)
post_delete = _declare(
    "post_delete",
    "Sent after an object is deleted, by Model.delete() and, once per object, by "
    "QuerySet.delete(). The sender is the model class.",
    Argument(
        "instance",
        "The object just deleted. Its record is gone from the database, so treat it as read-only.",
    ),
    Argument("using", _USING),
    Argument("origin", _ORIGIN),
)
m2m_changed = _declare(
    "m2m_changed",
    "Sent twice around every change to a many-to-many relation: before it with a pre_ action "
    "and after it with the matching post_ action. The sender is the intermediate (through) "
    "model of the relation.",
    Argument(
        "instance",
        "The object whose relation changes; it may sit on either side of the relation.",
    ),
    Argument(
        "action",
        "Which change and which moment: pre_add, post_add, pre_remove, post_remove, "
        "pre_clear or post_clear.",
    ),
    Argument(
        "reverse",
        "False when the change is made from the model that declares the field, True when it "
        "is made from the other side.",
    ),
    Argument(
        "model", "The class of the objects added to, removed from or cleared from the relation."
    ),
    Argument(
        "pk_set",
        "The primary keys concerned: for add, those really inserted (links that already "
        "existed are left out); for remove, those asked for, linked or not; None for clear.",
    ),
    Argument("using", _USING),
    _optional(
        "raw",
        "True when the relation is stored exactly as given, as when loading a fixture. "
        "New in Django 6.1: earlier versions do not send it.",
    ),
)
class_prepared = _declare(
    "class_prepared",
    "Sent once a model class is defined and registered with the model system. Django uses "
    "it internally. The sender is the new class.",
)


def _migrate_arguments(*, ran: bool) -> tuple[Argument, ...]:
    """pre_migrate and post_migrate share their arguments; only plan and apps differ in time."""
    return (
        Argument("app_config", "The AppConfig of the app; the same object as the sender."),
        Argument(
            "verbosity",
            "How much the command prints, from 0 (nothing) to 3; print no more than that.",
        ),
        Argument(
            "interactive",
            "True if the receiver may prompt the user; False if it must not wait for input.",
        ),
        _optional("stdout", "A file-like object that verbose output should be written to."),
        Argument("using", "The alias of the database the command works on."),
        _optional(
            "plan",
            f"The migrations {'that ran' if ran else 'about to run'}, as (migration, backwards) "
            "pairs where backwards is True for a rollback. Not a public API.",
        ),
        _optional(
            "apps",
            f"An app registry holding the project's state {'after' if ran else 'before'} the "
            "migrations; look models up here, not in the global registry.",
        ),
    )


# --- management: sent by django-admin ---------------------------------------------------------

pre_migrate = _declare(
    "pre_migrate",
    "Sent by the migrate command, once per installed app that has a models module, before "
    "any migration is applied. The sender is the app's AppConfig.",
    *_migrate_arguments(ran=False),
)
post_migrate = _declare(
    "post_migrate",
    "Sent at the end of the migrate command (even when nothing was applied) and of flush, "
    "once per installed app that has a models module. Receivers must not change the "
    "schema. The sender is the app's AppConfig.",
    *_migrate_arguments(ran=True),
)

# --- request: sent by the request handlers ----------------------------------------------------


class _RequestStarted(Signal):
    """``request_started``, whose strict check also wants exactly one of environ and scope."""

    def check_arguments(self, named: Mapping[str, Any], method: str = "send") -> None:
        super().check_arguments(named, method)
        if ("environ" in named) == ("scope" in named):
            raise TypeError(
                f"{self!r}.{method}() needs exactly one of 'environ' (from a WSGI handler) "
                f"and 'scope' (from an ASGI handler); got {'both' if named else 'neither'}"
            )


request_started = _RequestStarted(
    name="request_started",
    doc="Sent when a handler starts processing an HTTP request. A WSGI handler sends "
    "environ, an ASGI handler sends scope: exactly one of them is present, which strict "
    "mode checks. The sender is the handler class.",
    arguments=(
        _optional("environ", "The WSGI environ dictionary of the request."),
        _optional("scope", "The ASGI connection scope of the request."),
    ),
)
request_finished = _declare(
    "request_finished",
    "Sent when the response has been delivered to the client, as it is closed. "
    "The sender is the handler class.",
)
got_request_exception = _declare(
    "got_request_exception",
    "Sent while a request is handled, when an exception escapes that Django does not turn "
    "into a 4xx response by itself; a 500 response follows. Receivers run inside the "
    "exception handler, so sys.exc_info() gives the exception. The sender is always None.",
    Argument("request", "The HttpRequest being handled."),
)

# --- test: sent by the test framework ---------------------------------------------------------

setting_changed = _declare(
    "setting_changed",
    "Sent when a test overrides a setting (override_settings, modify_settings, "
    "TestCase.settings()): once when the new value takes effect and again when the old "
    "one comes back. The sender is the settings holder class.",
    Argument("setting", "The name of the setting."),
    Argument(
        "value",
        "The value in effect after this change; None when restoring a setting that did "
        "not exist before.",
    ),
    Argument("enter", "True when the override is applied, False when it is undone."),
)
template_rendered = _declare(
    "template_rendered",
    "Sent by the test framework each time a template is rendered; never while serving "
    "normally. The sender is the Template.",
    Argument("template", "The Template that was rendered; the same object as the sender."),
    Argument("context", "The Context it was rendered with."),
)

# --- db: sent by the database wrappers --------------------------------------------------------

connection_created = _declare(
    "connection_created",
    "Sent when a database wrapper opens its connection to the database: the place for "
    "per-connection setup such as session SQL. The sender is the wrapper class.",
    Argument(
        "connection",
        "The database wrapper whose connection was just opened; it tells databases apart "
        "when there are several.",
    ),
)

# --- tasks: sent by the background tasks framework --------------------------------------------

task_enqueued = _declare(
    "task_enqueued",
    f"Sent when a task backend has queued a task. {_TASK_BACKEND}",
    Argument("task_result", "The TaskResult of the task just queued."),
)
task_started = _declare(
    "task_started",
    f"Sent when a worker begins running a task. {_TASK_BACKEND}",
    Argument("task_result", "The TaskResult of the task, now marked as running."),
)
task_finished = _declare(
    "task_finished",
    f"Sent when a task has run, whether it succeeded or failed. {_TASK_BACKEND}",
    Argument("task_result", "The TaskResult of the task; its status says how it ended."),
)

# --- autoreload: sent by the development server's reloader ------------------------------------

autoreload_started = _declare(
    "autoreload_started",
    "Sent when the development server's autoreloader starts; receivers may call the "
    "sender's watch_dir() to watch more files. The sender is the reloader.",
)
file_changed = _declare(
    "file_changed",
    "Sent when the autoreloader sees a watched file change. If any receiver returns a "
    "true value, the server is not restarted. The sender is the reloader.",
    Argument("file_path", "The path of the file that changed."),
)


SIGNALS: Final[dict[str, Signal]] = {
    signal.name: signal
    for signal in (
        user_logged_in,
        user_logged_out,
        user_login_failed,
        pre_init,
        post_init,
        pre_save,
        post_save,
        pre_delete,
        post_delete,
        m2m_changed,
        class_prepared,
        pre_migrate,
        post_migrate,
        request_started,
        request_finished,
        got_request_exception,
        setting_changed,
        template_rendered,
        connection_created,
        task_enqueued,
        task_started,
        task_finished,
        autoreload_started,
        file_changed,
    )
    if signal.name is not None  # always true here: it only narrows the type for mypy
}

GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "auth": ("user_logged_in", "user_logged_out", "user_login_failed"),
    "model": (
        "pre_init",
        "post_init",
        "pre_save",
        "post_save",
        "pre_delete",
        "post_delete",
        "m2m_changed",
        "class_prepared",
    ),
    "management": ("pre_migrate", "post_migrate"),
    "request": ("request_started", "request_finished", "got_request_exception"),
    "test": ("setting_changed", "template_rendered"),
    "db": ("connection_created",),
    "tasks": ("task_enqueued", "task_started", "task_finished"),
    "autoreload": ("autoreload_started", "file_changed"),
}

_GROUP_OF_NAME: Final = {name: group for group, names in GROUPS.items() for name in names}


def group_of(signal: Signal) -> str:
    """Return the group of a catalogue signal ("auth", "model", ...).

    Raises ValueError for any other signal, even one named like a catalogue signal: the
    receivers connected to the catalogue's object never hear a look-alike.
    """
    if not isinstance(signal, Signal):
        raise TypeError(
            f"group_of() takes a tocsin.catalogue signal; got {signal!r} ({type(signal).__name__})"
        )
    name = signal.name
    if name is None or SIGNALS.get(name) is not signal:
        raise ValueError(
            f"{signal!r} is not a tocsin.catalogue signal; use the objects in "
            "tocsin.catalogue.SIGNALS"
        )
    return _GROUP_OF_NAME[name]
