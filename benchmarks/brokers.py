"""Throwaway Redis and PostgreSQL servers on 127.0.0.1, for the bridge's tests and benchmark.

Each server runs from the binaries on this machine, in a temporary directory, on a free port,
keeps nothing on disk that matters (no fsync, no snapshots), and is stopped and removed by
``close()`` (or the ``with`` block). Every wait is bounded. PostgreSQL refuses to run as
root, so when this process is root the server runs as an unprivileged user (``postgres`` if
the machine has one, else ``nobody``).

Either class raises ``Unavailable``, with the reason, when its server cannot be had here.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 20.0


class Unavailable(Exception):
    """This machine cannot run the server (the message says why)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop_process(process: subprocess.Popen[bytes] | None, signum: int) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signum)
    try:
        process.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(_STOP_TIMEOUT)


class _Server:
    """Start, stop, restart on the same port and data, close; a context manager."""

    process: subprocess.Popen[bytes] | None = None
    directory: str

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _launch(
        self, command: list[str], answers: Callable[[], bool], pause: float, **options: Any
    ) -> None:
        """Run ``command`` (Popen ``options``), its output appended to ``<program>.log`` in the
        directory, and return once ``answers()``, polled every ``pause`` seconds; raise
        ``Unavailable`` if it exits first or does not answer within the start timeout."""
        program = Path(command[0]).name
        log_path = Path(self.directory) / f"{program}.log"
        log = open(log_path, "ab")  # noqa: SIM115 (the child keeps it)
        with log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, **options
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise Unavailable(f"{program} exited: {tail}")
            if answers():
                return
            time.sleep(pause)  # polling a server that is starting up; bounded by the deadline
        raise Unavailable(f"{program} did not answer within {_START_TIMEOUT}s")

    def restart(self) -> None:
        """Stop the server, then start it again on the same port with the same data."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RedisServer(_Server):
    """``redis-server`` on 127.0.0.1:``port``, started by the constructor."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        self.binary = binary
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="tocsin-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self.directory,
            "--daemonize", "no",
        ]  # fmt: skip
        self._launch(command, self._pong, pause=0.02, stdin=subprocess.DEVNULL)

    def _pong(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as connection,
        ):
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
        return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL if it lingers)."""
        _stop_process(self.process, signal.SIGTERM)
        self.process = None


def _postgres_binaries() -> Path:
    found = shutil.which("postgres")
    if found is not None:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if candidates:
        return Path(candidates[-1]).parent
    raise Unavailable("PostgreSQL's server binaries (postgres, initdb) are not installed")


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The user to run PostgreSQL as: None for this process's own (it is not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise Unavailable("running as root, and neither a 'postgres' nor a 'nobody' user exists")


class PostgresServer(_Server):
    """A PostgreSQL cluster made by ``initdb`` in a temporary directory, serving
    127.0.0.1:``port`` with trust authentication for the user ``tocsin``; started by the
    constructor."""

    def __init__(self) -> None:
        self.binaries = _postgres_binaries()
        for tool in ("initdb", "postgres", "pg_isready"):
            if not (self.binaries / tool).is_file():
                raise Unavailable(f"{tool} is missing from {self.binaries}")
        self.user = _unprivileged_user()
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="tocsin-postgres-")
        self.data = Path(self.directory) / "data"
        self.dsn = f"host=127.0.0.1 port={self.port} user=tocsin dbname=postgres"
        try:
            if self.user is not None:
                os.chown(self.directory, self.user.pw_uid, self.user.pw_gid)
            self._run(
                "initdb", "-D", str(self.data), "-U", "tocsin", "-A", "trust",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
            self.start()
        except BaseException:
            self.close()
            raise

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that run a child as the unprivileged user, in our directory."""
        options: dict[str, Any] = {"cwd": self.directory, "stdin": subprocess.DEVNULL}
        if self.user is not None:
            options.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return options

    def _run(self, tool: str, *arguments: str) -> None:
        result = subprocess.run(
            [str(self.binaries / tool), *arguments],
            capture_output=True,
            timeout=_START_TIMEOUT,
            check=False,
            **self._as_user(),
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
            raise Unavailable(f"{tool} failed: {output}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        command = [
            str(self.binaries / "postgres"),
            "-D", str(self.data),
            "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.directory}",
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip
        self._launch(command, self._accepts_connections, pause=0.05, **self._as_user())

    def _accepts_connections(self) -> bool:
        ready = [str(self.binaries / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        probe = subprocess.run(ready, timeout=_START_TIMEOUT, check=False, **self._as_user())
        return probe.returncode == 0

    def stop(self) -> None:
        """Stop the server: a fast shutdown (SIGINT), which disconnects every client."""
        _stop_process(self.process, signal.SIGINT)
        self.process = None
