"""Integrations that send the catalogue's signals where applications live.

Each module wires one piece of software to ``tocsin.catalogue`` with the arguments and the
timing Django uses, so receivers written for Django run unchanged:

- ``tocsin.contrib.wsgi``: ``SignalMiddleware`` for any WSGI application (request signals).
- ``tocsin.contrib.asgi``: ``SignalMiddleware`` for any ASGI application (request signals).
- ``tocsin.contrib.sqlite``: a ``sqlite3`` connection class that sends
  ``connection_created``, and commit-aware batches tied to its transactions.
- ``tocsin.contrib.sqlalchemy``: SQLAlchemy's ORM events as the model signals, and batches
  tied to a session's transactions (needs the ``tocsin[sqlalchemy]`` extra).

Nothing here is imported by ``import tocsin``: import the module you use.
"""
