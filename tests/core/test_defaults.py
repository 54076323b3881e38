"""Defaults fail closed: with no environment the service is in production mode and refuses to start
without its secrets and database; local development (SQLite, development secrets, sign-up grant) is
chosen explicitly with ``DJANGO_ENV=local``, and ``make run`` chooses it.

Every case runs in a child process with an environment built from nothing (``PATH`` only), so
neither the test settings nor the developer's shell leak in.
"""

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-insecure-secret-key-change-me-in-production-0123456789"
SETTINGS_PROBE = (
    "import json; from django.conf import settings as s; print('SETTINGS ' + json.dumps({"
    "'env': s.DJANGO_ENV, 'debug': s.DEBUG, 'grant': s.SIGNUP_GRANT, 'engine': s.DATABASES['default']['ENGINE'],"
    "'cache': s.CACHES['default']['BACKEND'], 'secret': s.SECRET_KEY, 'jwt': s.JWT_SECRET,"
    "'ssl_redirect': s.SECURE_SSL_REDIRECT, 'secure_cookies': s.SESSION_COOKIE_SECURE}))"
)


def bare_env(**variables: str) -> dict[str, str]:
    """No configuration at all: only what a shell needs to find programs."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1", **variables}


def production_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "RECEIPT_SIGNING_KEY": secrets.token_hex(32),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/wallet_unused",
    }


def python(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def settings_seen(env: dict[str, str]) -> dict:
    result = python("manage.py", "shell", "-c", SETTINGS_PROBE, env=env)
    assert result.returncode == 0, result.stderr
    line = next(row for row in result.stdout.splitlines() if row.startswith("SETTINGS "))
    return json.loads(line.removeprefix("SETTINGS "))


@pytest.mark.parametrize(
    "command",
    [
        ["manage.py", "check", "--deploy"],
        ["manage.py", "runserver", "--noreload", "127.0.0.1:0"],
        # What gunicorn and every WSGI server import.
        ["-c", "import wallet_project.wsgi"],
    ],
    ids=["check", "runserver", "wsgi"],
)
def test_with_no_environment_at_all_the_service_refuses_to_start(command):
    result = python(*command, env=bare_env())
    assert result.returncode != 0, result.stdout + result.stderr
    assert "ImproperlyConfigured" in result.stderr
    for required in ("SECRET_KEY", "JWT_SECRET", "RECEIPT_SIGNING_KEY", "DATABASE_URL", "DJANGO_ENV=local"):
        assert required in result.stderr, required


def test_debug_on_in_production_does_not_bring_the_development_secrets_back():
    result = python("-c", "import wallet_project.wsgi", env=bare_env(DEBUG="true"))
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr and "JWT_SECRET" in result.stderr


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET"])
def test_production_refuses_the_committed_development_secret(name):
    result = python("-c", "import wallet_project.wsgi", env=bare_env(**{**production_secrets(), name: DEV_SECRET}))
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr
    assert name in result.stderr


def test_an_unknown_mode_is_refused_rather_than_guessed():
    result = python("-c", "import wallet_project.wsgi", env=bare_env(**production_secrets(), DJANGO_ENV="prod"))
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and "DJANGO_ENV" in result.stderr


def test_with_its_secrets_production_runs_with_debug_off_and_no_signup_grant():
    given = production_secrets()
    seen = settings_seen(bare_env(**given, REDIS_URL="redis://127.0.0.1:6379/7"))
    assert seen["env"] == "production"
    assert seen["debug"] is False
    assert seen["grant"] == ""
    assert seen["engine"] == "django.db.backends.postgresql"
    assert (seen["secret"], seen["jwt"]) == (given["SECRET_KEY"], given["JWT_SECRET"])
    assert seen["ssl_redirect"] is True and seen["secure_cookies"] is True
    # DEBUG turned on to look at a fault keeps the production protections.
    debugging = settings_seen(bare_env(**given, REDIS_URL="redis://127.0.0.1:6379/7", DEBUG="true"))
    assert debugging["ssl_redirect"] is True and debugging["secure_cookies"] is True and debugging["grant"] == ""


def test_local_mode_is_chosen_explicitly_and_needs_no_configuration():
    seen = settings_seen(bare_env(DJANGO_ENV="local"))
    assert seen["env"] == "local"
    assert seen["debug"] is True
    assert seen["grant"] == "USDT:1000"
    assert seen["engine"] == "django.db.backends.sqlite3"
    assert seen["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert seen["ssl_redirect"] is False
    assert python("manage.py", "check", env=bare_env(DJANGO_ENV="local")).returncode == 0


def make_commands(target: str) -> list[str]:
    """The command lines ``make <target>`` would run (``make -n``), those that start Django."""
    result = subprocess.run(
        ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, env=os.environ
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "manage.py" in line]


@pytest.mark.parametrize("target", ["run", "migrate", "seed"])
def test_make_targets_choose_local_mode_and_work_with_no_configuration(target):
    commands = make_commands(target)
    assert commands, f"make {target} runs no manage.py command"
    for line in commands:
        words = shlex.split(line)
        assignments = dict(word.split("=", 1) for word in words[: next(i for i, w in enumerate(words) if "=" not in w)])
        assert assignments.get("DJANGO_ENV") == "local", line
        # The command line's own environment is all these settings need: no secrets, no database.
        seen = settings_seen(bare_env(**assignments))
        assert (seen["env"], seen["engine"], seen["grant"]) == ("local", "django.db.backends.sqlite3", "USDT:1000")


def test_every_variable_the_settings_read_is_in_the_readme_configuration_table():
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z][A-Z0-9_]*)"', (ROOT / "wallet_project/settings/base.py").read_text()))
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") :].split("\n## ", 1)[0]
    assert "DJANGO_ENV" in read
    assert sorted(name for name in read if f"`{name}`" not in table) == []
