"""A small shop as a WSGI application: pizzas in a sqlite database, behind the request signals.

Each request opens its own connection with ``tocsin.contrib.sqlite.connect`` (which sends
``connection_created``), and wraps each write in a ``tocsin.emit`` helper whose ``post_``
signal is deferred to ``tocsin.contrib.sqlite.on_commit``: receivers hear about a pizza only
once it is stored for good. The whole application is wrapped in
``tocsin.contrib.wsgi.SignalMiddleware``, which sends the request signals.

Routes: ``GET /`` lists the pizzas (with forms, for a browser); ``POST /pizzas`` creates one
(form field ``name``); ``POST /pizzas/<id>`` renames one; ``POST /pizzas/<id>/delete``
deletes one; ``GET /kitchen`` fails, to show ``got_request_exception``.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from tocsin.contrib import sqlite
from tocsin.contrib.wsgi import SignalMiddleware
from tocsin.emit import deleting, saving

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIEnvironment as Environ

__all__ = ["Pizza", "make_app"]

_PIZZA = re.compile(r"/pizzas/(\d+)(/delete)?")


@dataclass
class Pizza:
    """One pizza on the menu: the model the shop's signals are about."""

    name: str
    id: int | None = None


class _NotFound(Exception):
    pass


def make_app(database: Path) -> SignalMiddleware:
    """Create the shop's table in ``database`` and return the shop's WSGI application."""
    with closing(sqlite3.connect(database)) as setup, setup:
        setup.execute("CREATE TABLE IF NOT EXISTS pizza (id INTEGER PRIMARY KEY, name TEXT)")

    def shop(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if path == "/kitchen":
            raise RuntimeError("the oven is on fire")
        with closing(sqlite.connect(database)) as db:
            try:
                status, page = _handle(db, method, path, _form(environ))
            except _NotFound:
                status, page = "404 Not Found", "<p>No such page or pizza.</p>"
        start_response(status, [("Content-Type", "text/html; charset=utf-8")])
        return [page.encode()]

    return SignalMiddleware(shop)


def _form(environ: Environ) -> dict[str, str]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    fields = parse_qs(environ["wsgi.input"].read(length).decode()) if length else {}
    return {name: values[0] for name, values in fields.items()}


def _handle(db: sqlite.Connection, method: str, path: str, form: dict[str, str]) -> tuple[str, str]:
    if (method, path) == ("GET", "/"):
        return "200 OK", _menu(db)
    if (method, path) == ("POST", "/pizzas"):
        pizza = Pizza(form.get("name", "margherita"))
        with db, sqlite.on_commit(db) as batch, saving(pizza, created=True, defer=batch):
            pizza.id = db.execute("INSERT INTO pizza (name) VALUES (?)", (pizza.name,)).lastrowid
        return "201 Created", f"<p>Added {html.escape(pizza.name)}.</p>{_BACK}"
    match = _PIZZA.fullmatch(path)
    if method != "POST" or match is None:
        raise _NotFound
    pizza = _load(db, int(match.group(1)))
    if match.group(2):
        with db, sqlite.on_commit(db) as batch, deleting(pizza, defer=batch):
            db.execute("DELETE FROM pizza WHERE id = ?", (pizza.id,))
        return "200 OK", f"<p>Deleted {html.escape(pizza.name)}.</p>{_BACK}"
    pizza.name = form.get("name", pizza.name)
    with db, sqlite.on_commit(db) as batch, saving(pizza, created=False, defer=batch):
        db.execute("UPDATE pizza SET name = ? WHERE id = ?", (pizza.name, pizza.id))
    return "200 OK", f"<p>Renamed to {html.escape(pizza.name)}.</p>{_BACK}"


def _load(db: sqlite.Connection, key: int) -> Pizza:
    row: Any = db.execute("SELECT name, id FROM pizza WHERE id = ?", (key,)).fetchone()
    if row is None:
        raise _NotFound
    return Pizza(*row)


_BACK = '<p><a href="/">Back to the menu</a></p>'


def _menu(db: sqlite.Connection) -> str:
    rows = [Pizza(*row) for row in db.execute("SELECT name, id FROM pizza ORDER BY id")]
    items = "".join(
        f'<li>{html.escape(p.name)} <form method="post" action="/pizzas/{p.id}">'
        f'<input name="name"><button>rename</button></form>'
        f'<form method="post" action="/pizzas/{p.id}/delete"><button>delete</button></form></li>'
        for p in rows
    )
    return (
        "<h1>tocsin demo shop</h1><p>Each request prints its signals where the demo runs.</p>"
        f"<ul>{items}</ul>"
        '<form method="post" action="/pizzas"><input name="name"><button>add</button></form>'
        '<p><a href="/kitchen">Visit the kitchen</a> (a request that fails).</p>'
    )
