"""Helpers that read the deployment files and run their commands outside Docker.

There is no Docker engine where the suite runs, so the Dockerfile and docker-compose.yml are
checked by what can run here: their files are parsed, and the commands they declare (collectstatic,
migrate, gunicorn, the health checks, the relay) are run from a copy of the build context.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
VENV_BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_S = 120


# --- Dockerfile ---------------------------------------------------------------------------------
@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int
    flags: dict[str, str] = field(default_factory=dict)

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD / HEALTHCHECK CMD / ENTRYPOINT."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text.split("CMD", 1)[1]
        return json.loads(text.strip())


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions with continuation lines joined, comments dropped and `--flag=value`s split off."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        flags = {}
        while args.startswith("--"):
            flag, _, args = args.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            args = args.lstrip()
        instructions.append(Instruction(keyword=keyword, args=args.strip(), stage=stage, flags=flags))
    return instructions


def dockerfile_env(stage: int) -> dict[str, str]:
    """The ENV of one stage (``KEY=value`` pairs; shell-style quoting)."""
    env: dict[str, str] = {}
    for ins in dockerfile_instructions():
        if ins.keyword == "ENV" and ins.stage == stage:
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def run_instruction_command(ins: Instruction, marker: str) -> tuple[dict[str, str], list[str]]:
    """From a RUN ``A=1 B=2 cmd args && other``, the env assignments and the command holding ``marker``."""
    for part in ins.args.split("&&"):
        tokens = shlex.split(part)
        if marker not in tokens:
            continue
        env = {}
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
            key, _, value = tokens.pop(0).partition("=")
            env[key] = value
        return env, tokens
    raise AssertionError(f"no RUN command with {marker!r}")


# --- .dockerignore and the build context --------------------------------------------------------
def _ignore_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    # A pattern that names a directory excludes everything below it.
    return re.compile(out + "(?:/.*)?")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((include, _ignore_regex(pattern)))
    return rules


def build_context_files(root: Path = ROOT) -> list[str]:
    """Relative paths that `docker build .` sends (Docker's rule: the last matching pattern wins)."""
    rules = dockerignore_rules()
    kept = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Large excluded trees (.git, .venv, node_modules) are not walked.
        dirnames[:] = [d for d in dirnames if not _ignored(rel_dir + d, rules) or _has_exception(rules)]
        for name in filenames:
            rel = rel_dir + name
            if not _ignored(rel, rules):
                kept.append(rel)
    return sorted(kept)


def _ignored(rel: str, rules) -> bool:
    ignored = False
    for include, regex in rules:
        if regex.fullmatch(rel):
            ignored = not include
    return ignored


def _has_exception(rules) -> bool:
    return any(include for include, _ in rules)


def copy_build_context(dest: Path) -> list[str]:
    files = build_context_files()
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return files


# --- docker-compose.yml -------------------------------------------------------------------------
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)")


def compose_variables(text: str | None = None) -> dict[str, str | None]:
    """Every ``${VAR...}`` in the compose file: name -> operator (``:?``, ``:-``...) or None."""
    text = COMPOSE_FILE.read_text() if text is None else text
    found: dict[str, str | None] = {}
    for match in _VAR.finditer(text):
        name = match["name"] or match["bare"]
        found.setdefault(name, match["op"])
    return found


def interpolate(value, variables: dict[str, str]):
    """Compose's interpolation of one value: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name = match["name"] or match["bare"]
        current = variables.get(name, "")
        op, arg = match["op"], match["arg"] or ""
        if op in (":-", "-"):
            return current if current or (op == "-" and name in variables) else arg
        if op in (":?", "?"):
            if not current:
                raise ValueError(f"compose would refuse to start: {arg}")
            return current
        return current

    return _VAR.sub(substitute, value)


def service_environment(service: str, variables: dict[str, str]) -> dict[str, str]:
    env = compose()["services"][service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(interpolate(value, variables)) for key, value in env.items()}


def env_example() -> dict[str, str]:
    values = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def env_example_names() -> set[str]:
    """Variables that .env.example sets or mentions in a commented-out line."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


# --- production-like environment ----------------------------------------------------------------
def production_secrets() -> dict[str, str]:
    """Fresh secrets, generated as .env.example tells an operator to."""
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "RECEIPT_SIGNING_KEY": secrets.token_hex(32),
        "POSTGRES_PASSWORD": secrets.token_hex(24),
    }


# The compose stack's Redis, here on this machine (.ci/run starts it). Production refuses per-process
# rate-limit counters, so the compose environment is never run without one.
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/7"


def production_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The compose ``api`` service's environment with fresh secrets and local service addresses."""
    variables = {**env_example(), **production_secrets()}
    env = service_environment("api", variables)
    env.update(DATABASE_URL=database_url, REDIS_URL=LOCAL_REDIS_URL, KAFKA_BOOTSTRAP_SERVERS="")
    env.update(overrides)
    return env


def image_environment(**overrides: str) -> dict[str, str]:
    """What a process in the container sees: the runtime stage's ENV, with this venv on PATH.

    Nothing leaks in from the test process (pytest-django's DJANGO_SETTINGS_MODULE, DATABASE_URL...).
    """
    env = {key: os.environ[key] for key in ("HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT") if key in os.environ}
    runtime = dockerfile_instructions()[-1].stage
    env.update(dockerfile_env(runtime))
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env.update(overrides)
    return env


def container_command(argv: list[str]) -> list[str]:
    """An image command (``python ...``, ``gunicorn ...``) resolved to this virtualenv's executables."""
    program = argv[0]
    if program in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    local = VENV_BIN / program
    if not local.exists():
        raise AssertionError(f"{program} is not installed in {VENV_BIN} (is it in requirements.txt?)")
    return [str(local), *argv[1:]]


def run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = COMMAND_TIMEOUT_S):
    return subprocess.run(
        container_command(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


# --- PostgreSQL ---------------------------------------------------------------------------------
def admin_database_url() -> str:
    """The maintenance database on the test server (DATABASE_URL's server, database ``postgres``)."""
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/wallet"))
    return urlunsplit((url.scheme, url.netloc, "/postgres", "", ""))


def database_url(name: str) -> str:
    url = urlsplit(admin_database_url())
    return urlunsplit((url.scheme, url.netloc, f"/{name}", "", ""))


def create_database(name: str) -> str:
    import psycopg

    with psycopg.connect(admin_database_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(admin_database_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- processes ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, *, headers: dict[str, str] | None = None, timeout: float = 10.0):
    """(status, headers, body bytes); HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback only
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{tail(log)}")
        try:
            status, _, _ = http_get(url, timeout=2)
            if status == 200:
                return
            last = status
        except OSError as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{url} not answering 200 after {timeout} s (last: {last!r}):\n{tail(log)}")


def stop(process: subprocess.Popen, timeout: float = 20.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []
