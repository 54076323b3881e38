"""The API under gunicorn on a private PostgreSQL database: the one copy of port, database and server handling.

Used by the live-server tests (``tests/live.py``) and by the benchmark (``bench/``). Databases are created
and dropped only under a caller-given name prefix (``sec_`` for tests, ``bench_`` for the benchmark);
servers run ``gunicorn -c gunicorn.conf.py`` from the repository, as production does, on a free port.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class ServerError(AssertionError):
    """gunicorn exited early or never became healthy (an AssertionError: in a test it is a failure)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- databases -----------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` (scheme, user, server) pointed at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def connect(url: str, name: str = "postgres", **kwargs: Any) -> psycopg.Connection:
    """A plain psycopg connection (autocommit by default) to database ``name`` on ``url``'s server."""
    kwargs.setdefault("autocommit", True)
    return psycopg.connect(with_database(url, name).replace("postgres://", "postgresql://", 1), **kwargs)


def _guard(name: str, prefix: str) -> None:
    if not name.startswith(prefix):
        raise ValueError(f"refusing to touch database {name!r}: only {prefix}* databases are managed here")


def database_exists(url: str, name: str) -> bool:
    with connect(url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def create_database(url: str, name: str, *, prefix: str, template: str | None = None) -> str:
    """``CREATE DATABASE name [TEMPLATE template]`` (cloning a migrated template is much faster than migrating)."""
    _guard(name, prefix)
    with connect(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


def drop_database(url: str, name: str, *, prefix: str) -> None:
    """Drop ``name`` even if sessions are still connected to it."""
    _guard(name, prefix)
    with connect(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the server ------------------------------------------------------------------------------------


def health(port: int, *, timeout: float = 2) -> int:
    """The status of ``GET /health`` on 127.0.0.1:``port``; connection errors propagate."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status
    finally:
        conn.close()


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py`` on a free port with ``env``, its output appended to ``log``."""

    def __init__(self, env: Mapping[str, str], *, log: IO[bytes], workers: int | None = None) -> None:
        self.port = free_port()
        self.env = {**env, "GUNICORN_BIND": f"127.0.0.1:{self.port}"}
        if workers is not None:
            self.env["GUNICORN_WORKERS"] = str(workers)
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def expected_workers(self) -> int:
        # gunicorn.conf.py's default: cores + 1.
        return int(self.env.get("GUNICORN_WORKERS") or (os.cpu_count() or 1) + 1)

    def start(self, *, timeout: float = 60) -> None:
        """Start and wait until ``/health`` answers 200 and every worker is up."""
        self.process = subprocess.Popen(
            # Each server has no control socket: several run on one machine at once.
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--no-control-socket"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"gunicorn exited early ({self.process.returncode})")
            with contextlib.suppress(OSError):
                if health(self.port) == 200 and len(self.worker_pids()) >= self.expected_workers:
                    return
            time.sleep(0.2)
        self.stop()
        raise ServerError(f"gunicorn did not become healthy in {timeout}s")

    def worker_pids(self) -> list[int]:
        """The master's live children (its workers), read from /proc."""
        if self.process is None:
            return []
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.pid and fields[0] != "Z":
                    pids.append(int(stat.parent.name))
        return sorted(pids)

    def stop(self, *, timeout: float = 25) -> None:
        """SIGTERM (graceful: in-flight requests finish), then SIGKILL to the whole process group."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
