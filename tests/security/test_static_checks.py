"""Static gates run by the suite: deployment checks, bandit, and a dependency audit that fails closed."""

import json
import subprocess

import pytest

from tests.live import BIN, ROOT, free_port, production_env


def _run(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_deploy_checks_are_clean_in_production_configuration():
    env = production_env("sec_checks_unused")
    # The production default: HTTPS redirect on (the live tests turn it off for plain-HTTP clients).
    del env["SECURE_SSL_REDIRECT"]
    result = _run(str(BIN / "python"), "manage.py", "check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_bandit_finds_nothing_of_medium_or_high_severity():
    result = _run(
        str(BIN / "bandit"), "-c", "pyproject.toml", "-r", ".", "--severity-level", "medium", "-f", "json", "-q"
    )
    report = json.loads(result.stdout)
    scanned = [name for name in report["metrics"] if name != "_totals"]
    findings = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_severity']} {r['issue_text']}"
        for r in report["results"]
    ]
    assert result.returncode == 0 and findings == [], "\n".join(findings) or result.stderr
    # It really looked at the application, and only at it (pyproject.toml [tool.bandit] exclude_dirs).
    assert any(name.endswith("transactions/services.py") for name in scanned)
    assert len(scanned) > 50 and report["metrics"]["_totals"]["loc"] > 2000
    assert not [name for name in scanned if "/tests/" in name or "/migrations/" in name or ".venv" in name]


def _audit(*extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return _run(
        str(BIN / "pip-audit"),
        "-r",
        "requirements.txt",
        "--strict",
        "--progress-spinner",
        "off",
        "-f",
        "json",
        *extra,
        env=env,
        timeout=900,
    )


def test_the_dependency_audit_fails_closed_when_it_cannot_reach_a_vulnerability_database():
    """No silent pass: unreachable vulnerability data is a failed audit, not a clean one."""
    closed = f"http://127.0.0.1:{free_port()}"
    env = {**production_env("unused"), "HTTPS_PROXY": closed, "HTTP_PROXY": closed, "NO_PROXY": ""}
    # Pinned requirements audited as listed (no resolver, no pip): the only network use is the lookup.
    result = _audit("--no-deps", "--disable-pip", env=env)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "No known vulnerabilities found" not in result.stdout + result.stderr


@pytest.mark.soak
def test_pinned_dependencies_have_no_known_vulnerabilities():
    """The real audit, every pin and its dependencies; it fails when any package could not be checked."""
    result = _audit()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line]
    audited = {dep["name"].lower() for dep in report["dependencies"] if "vulns" in dep}
    assert len(audited) >= len(pins)
    assert [dep for dep in report["dependencies"] if dep.get("vulns")] == []
