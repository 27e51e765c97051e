"""The demo behind ``python -m tocsin demo``: a small shop that shows tocsin at work.

- ``shop``: a sqlite-backed WSGI application (create, rename and delete pizzas), wrapped in
  ``tocsin.contrib.wsgi.SignalMiddleware``, storing through ``tocsin.contrib.sqlite`` with
  the ``tocsin.emit`` helpers, its ``post_save``/``post_delete`` deferred until commit.
- ``signals``: receivers for the signals the shop fires, which describe each signal as it
  fires. ``tocsin.autodiscover("tocsin.demo")`` imports it, which connects them, as a Django
  app's ``ready()`` imports its ``signals`` module.
- ``run``: serves the shop with ``wsgiref`` on 127.0.0.1 and either drives a few requests
  against it, printing what each one fired, or keeps serving for a browser.

It ships inside the package so that the command works from a plain ``pip install``; it is
also meant to be read, as an example of wiring tocsin into an application.
"""
