"""The application under test: the production environment minus what a load test switches off, gunicorn
(devtools/liveserver.py, shared with the live-server tests), management commands and a small HTTP client."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from bench.config import (
    JWT_SECRET,
    PG_HOST,
    PG_PORT,
    PG_USER,
    PY,
    RECEIPT_KEY,
    ROOT,
    SECRET_KEY,
)
from devtools import liveserver


def bench_env(database: str, **extra: str) -> dict[str, str]:
    """Production settings (DEBUG off, real secrets), minus what a load test must switch off."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "DB_", "KAFKA_", "REDIS_", "RATELIMIT_", "DJANGO_", "SIGNUP_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="wallet_project.settings.base",
        DEBUG="false",
        SECRET_KEY=SECRET_KEY,
        JWT_SECRET=JWT_SECRET,
        RECEIPT_SIGNING_KEY=RECEIPT_KEY,
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}",
        DB_CONN_MAX_AGE="600",
        RATELIMIT_ENABLE="false",
        LOG_LEVEL="WARNING",
        KAFKA_BOOTSTRAP_SERVERS="",
        SIGNUP_GRANT="",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def django(args: list[str], *, database: str, logfile: Path, capture: bool = False) -> str:
    """Run ``manage.py``/``bench/tasks.py`` with the bench environment; fail loudly with the log tail."""
    with logfile.open("a") as stream:
        stream.write(f"$ {' '.join(args)}\n")
        stream.flush()
        proc = subprocess.run(
            [str(PY), *args],
            cwd=ROOT,
            env=bench_env(database),
            stdout=subprocess.PIPE if capture else stream,
            stderr=stream,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"failed: {' '.join(args)} (exit {proc.returncode})\n{tail}")
    return proc.stdout if capture else ""


class Server:
    """gunicorn with the repository's gunicorn.conf.py, as production runs it (devtools.liveserver.Gunicorn)."""

    def __init__(self, *, database: str, logfile: Path, **extra_env: str) -> None:
        self.env = bench_env(database, **extra_env)
        self.logfile = logfile
        self.gunicorn: liveserver.Gunicorn | None = None

    @property
    def url(self) -> str:
        assert self.gunicorn is not None
        return self.gunicorn.url

    @property
    def proc(self) -> subprocess.Popen:
        assert self.gunicorn is not None and self.gunicorn.process is not None
        return self.gunicorn.process

    def __enter__(self) -> Server:
        self._log = self.logfile.open("ab")
        self.gunicorn = liveserver.Gunicorn(self.env, log=self._log)
        try:
            self.gunicorn.start(timeout=90)
        except liveserver.ServerError as exc:
            self._log.close()
            raise SystemExit(f"{exc}; see {self.logfile}") from None
        return self

    def workers(self) -> list[int]:
        return self.gunicorn.worker_pids() if self.gunicorn else []

    def __exit__(self, *exc: object) -> None:
        if self.gunicorn is None:
            return
        self.gunicorn.stop(timeout=40)
        self._log.close()
        self.gunicorn = None

    def log_count(self, needle: str) -> int:
        return sum(needle in line for line in self.logfile.read_text(errors="replace").splitlines())


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback only
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def read_tokens(path: Path) -> list[tuple[int, str]]:
    return [(int(a), b) for a, b in (line.split() for line in path.read_text().splitlines() if line.strip())]


def probe(url: str, token: str, *, method: str = "GET", body: dict | None = None) -> dict:
    status, payload = http(method, url, token=token, body=body)
    if status != 200:
        raise SystemExit(f"probe {method} {url} answered {status}: {payload}")
    return payload
