"""Live-server helpers: the API under gunicorn on a private PostgreSQL database, and a stdlib HTTP client.

Tests that need a real server (real HTTP, real worker processes, committed data) use these instead of
pytest-django's test database, which a server process cannot see. Typical use::

    with migrated_template("mytests") as template, live_api(template, "mytests") as api:
        users = api.seed(["alice", "bob"], funds={"USDT": "100"})
        reply = api.http.post("/wallet/transfer", {...}, token=users[0]["token"])
        api.sql("SELECT count(*) FROM transactions_transaction")

Databases are named ``sec_<prefix>_<random>`` and dropped afterwards; servers bind a free port on
127.0.0.1 and are stopped (SIGTERM, then SIGKILL) however the test ends.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import random
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from devtools import liveserver
from devtools.liveserver import BIN, ROOT, free_port  # tests import these from here

DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
PREFIX = "sec_"  # live-test databases; nothing else is ever dropped


# --- databases -----------------------------------------------------------------------------------


def _server_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_ADMIN_URL


def database_url(name: str) -> str:
    """``DATABASE_URL`` (server, user) pointed at database ``name``."""
    return liveserver.with_database(_server_url(), name)


def connect(name: str = "postgres", **kwargs: Any) -> psycopg.Connection:
    """A plain psycopg connection (autocommit) to database ``name`` on the test server."""
    return liveserver.connect(_server_url(), name, **kwargs)


def sql(dbname: str, query: str, params: Iterable[Any] | None = None) -> list[tuple]:
    with connect(dbname) as conn:
        return conn.execute(query, list(params or [])).fetchall()


def create_database(prefix: str, *, template: str | None = None) -> str:
    name = f"{PREFIX}{prefix}_{secrets.token_hex(4)}"
    return liveserver.create_database(_server_url(), name, prefix=PREFIX, template=template)


def drop_database(name: str) -> None:
    liveserver.drop_database(_server_url(), name, prefix=PREFIX)


@contextlib.contextmanager
def migrated_template(prefix: str) -> Iterator[str]:
    """A database migrated once, to be cloned (``CREATE DATABASE ... TEMPLATE``) by each live server."""
    name = create_database(f"{prefix}_tmpl")
    try:
        result = manage(production_env(name), "migrate", "--noinput", timeout=300)
        assert result.returncode == 0, f"migrate failed:\n{result.stdout}\n{result.stderr}"
        yield name
    finally:
        drop_database(name)


# --- environment and management commands -----------------------------------------------------------


def production_env(dbname: str, **overrides: str) -> dict[str, str]:
    """The environment of a production deployment (DEBUG off, real secrets), on database ``dbname``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_", "GUNICORN_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "wallet_project.settings.base",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SECRET": secrets.token_urlsafe(36),
            "RECEIPT_SIGNING_KEY": secrets.token_hex(32),
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "RATELIMIT_ENABLE": "false",
            "DATABASE_URL": database_url(dbname),
            "SIGNUP_GRANT": "",
            "KAFKA_BOOTSTRAP_SERVERS": "",
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_SEED_SCRIPT = """
import json, os
from decimal import Decimal
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from accounts.models import User
from accounts.services import _issue_tokens
from currencies.models import Currency
from transactions.services import deposit_create
from wallets.models import Wallet
spec = json.loads(os.environ["LIVE_SEED"])
password = make_password(spec["password"])
currencies = {c.code: c for c in Currency.objects.filter(code__in=spec["currencies"])}
out = []
for name, funds in zip(spec["usernames"], spec["funds"]):
    user = User.objects.create(
        username=name, email=name + "@example.test", password=password, is_staff=spec["staff"]
    )
    if spec["staff"]:  # staff who move money need the permission, as in production
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="transactions", codename="add_transaction")
        )
    Wallet.objects.bulk_create([Wallet(user=user, currency=currencies[code]) for code in spec["currencies"]])
    for code, amount in funds.items():
        if Decimal(amount) > 0:
            deposit_create(user_id=user.pk, currency=currencies[code], amount=Decimal(amount), memo="live seed")
    out.append({"id": user.pk, "username": name, "token": _issue_tokens(user).access})
print("LIVE-SEED " + json.dumps(out))
"""


# --- HTTP --------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """The error envelope's machine code (None for a non-problem response)."""
        if not self.headers.get("content-type", "").startswith("application/problem+json"):
            return None
        return self.json().get("code")


@dataclass
class Http:
    """A tiny HTTP/1.1 client on ``http.client``: one connection per request (sync workers close it anyway)."""

    host: str
    port: int
    timeout: float = 30.0
    default_headers: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send a request; ``body`` is JSON-encoded, ``raw`` is sent as is. Connection errors propagate."""
        all_headers = {**self.default_headers, **(headers or {})}
        payload: bytes | None = None
        if raw is not None:
            payload = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            payload = json.dumps(body).encode()
        if payload is not None:
            all_headers.setdefault("Content-Type", "application/json")
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)
        try:
            conn.request(method, path, body=payload, headers=all_headers)
            response = conn.getresponse()
            data = response.read()
            reply_headers = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, reply_headers, data, time.perf_counter() - started)
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)


def run_concurrently(tasks: list[Callable[[], Any]], *, threads: int) -> list[Any]:
    """Run ``tasks`` on ``threads`` threads; results (or the exception each raised) in task order."""

    def guarded(task: Callable[[], Any]) -> Any:
        try:
            return task()
        except Exception as exc:  # noqa: BLE001 - handed to the test as a result
            return exc

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(guarded, tasks))


# --- the server ----------------------------------------------------------------------------------------


class LiveServer(liveserver.Gunicorn):
    """``gunicorn -c gunicorn.conf.py`` on a free port, with the given environment; its log in a temporary file."""

    def __init__(self, env: dict[str, str], *, workers: int = 3) -> None:
        log = tempfile.NamedTemporaryFile(prefix="sec_gunicorn_", suffix=".log", delete=False)  # noqa: SIM115
        super().__init__(env, log=log, workers=workers)

    def start(self, *, timeout: float = 60) -> None:
        try:
            super().start(timeout=timeout)
        except liveserver.ServerError as exc:
            raise AssertionError(f"{exc}:\n{self.log_text()[-4000:]}") from None

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def cleanup(self) -> None:
        self.stop()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


@dataclass
class LiveApi:
    """A running server, its database and helpers to set up and inspect both."""

    dbname: str
    env: dict[str, str]
    server: LiveServer
    http: Http

    def sql(self, query: str, params: Iterable[Any] | None = None) -> list[tuple]:
        return sql(self.dbname, query, params)

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return manage(self.env, *args, timeout=timeout)

    def seed(
        self,
        usernames: list[str],
        *,
        funds: dict[str, str] | list[dict[str, str]] | None = None,
        currencies: tuple[str, ...] = ("USDT", "BTC"),
        password: str = "correct horse battery",
        staff: bool = False,
    ) -> list[dict[str, Any]]:
        """Create users with a wallet per currency, fund them by recorded deposits, return ids and tokens."""
        per_user = funds if isinstance(funds, list) else [funds or {}] * len(usernames)
        spec = {
            "usernames": usernames,
            "funds": per_user,
            "currencies": list(currencies),
            "password": password,
            "staff": staff,
        }
        result = subprocess.run(
            [str(BIN / "python"), "manage.py", "shell", "-c", _SEED_SCRIPT],
            cwd=ROOT,
            env={**self.env, "LIVE_SEED": json.dumps(spec)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        lines = [line for line in result.stdout.splitlines() if line.startswith("LIVE-SEED ")]
        assert result.returncode == 0 and lines, f"seeding failed:\n{result.stdout}\n{result.stderr}"
        return json.loads(lines[-1].removeprefix("LIVE-SEED "))

    def reconcile(self) -> subprocess.CompletedProcess:
        return self.manage("reconcile", timeout=300)

    def deadlocks(self) -> int:
        with connect(self.dbname) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            return conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", [self.dbname]).fetchone()[
                0
            ]

    def backends(self) -> list[tuple[int, str, str]]:
        """(pid, state, query) of every other session on this database: the server's connections."""
        return self.sql(
            "SELECT pid, coalesce(state, ''), query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )


@contextlib.contextmanager
def live_api(template: str, prefix: str, *, workers: int = 3, **env: str) -> Iterator[LiveApi]:
    """Clone ``template`` into a fresh ``sec_*`` database, serve it with gunicorn, tear both down afterwards."""
    dbname = create_database(prefix, template=template)
    server = LiveServer(production_env(dbname, **env), workers=workers)
    try:
        server.start()
        yield LiveApi(dbname, server.env, server, Http("127.0.0.1", server.port))
    finally:
        try:
            server.cleanup()
        finally:
            drop_database(dbname)


# --- a private PostgreSQL cluster (for tests that stop or restart the server itself) --------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@dataclass
class Cluster:
    """A throwaway PostgreSQL cluster in a temporary directory, run as the ``postgres`` OS user."""

    directory: str
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, program: str, *args: str) -> None:
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{program} {args}: {result.stdout}{result.stderr}"

    def initdb(self) -> None:
        self._pg("initdb", "-D", self.directory, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", self.directory, "-l", f"{self.directory}/server.log", "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", self.directory, "-m", mode, "-w", "stop")


@contextlib.contextmanager
def private_cluster() -> Iterator[Cluster]:
    """initdb + start on a free port; stopped and deleted afterwards. Never touches the shared server."""
    directory = tempfile.mkdtemp(prefix="sec_pg_")
    owner = pwd.getpwnam("postgres")
    os.chown(directory, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(directory, free_port())
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


# --- fixtures (import them into a conftest.py) ----------------------------------------------------------


@pytest.fixture(scope="session")
def live_template():
    """A migrated database that live servers start from (cloned, never served itself)."""
    with migrated_template("live") as name:
        yield name


@pytest.fixture
def rng(request):
    """A seeded Random; the seed is printed (pytest shows it on failure) and ``SEC_SEED=<n>`` replays it."""
    seed = int(os.environ.get("SEC_SEED") or random.SystemRandom().randrange(2**32))
    print(f"[{request.node.name}] random seed {seed} (replay with SEC_SEED={seed})")
    generator = random.Random(seed)
    generator.seed_value = seed
    return generator
