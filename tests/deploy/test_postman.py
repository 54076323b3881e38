"""The Postman collection: it covers the README's endpoint table, and newman runs it green against
gunicorn serving a fresh database (production-like settings, SIGNUP_GRANT=USDT:1000, a staff user).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.deploy import support
from tests.deploy.conftest import STAFF_PASSWORD, STAFF_USERNAME

POSTMAN = support.ROOT / "postman"
COLLECTION = POSTMAN / "wallet-api.postman_collection.json"
ENVIRONMENT = POSTMAN / "local.postman_environment.json"
NEWMAN = POSTMAN / "node_modules" / ".bin" / "newman"


def _requests(items):
    for item in items:
        if "item" in item:
            yield from _requests(item["item"])
        else:
            yield item


@pytest.fixture(scope="module")
def collection() -> dict:
    return json.loads(COLLECTION.read_text())


def readme_endpoints() -> set[tuple[str, str]]:
    """(method, path pattern) for every row of the README's endpoint table."""
    text = (support.ROOT / "README.md").read_text()
    table = text.split("## Endpoints", 1)[1].split("\n\n", 2)[1]
    endpoints = set()
    for line in table.splitlines():
        match = re.match(r"\|\s*(GET|POST|PUT|PATCH|DELETE)\s*\|(.*?)\|", line)
        if match:
            for path in re.findall(r"`([^`]+)`", match[2]):
                endpoints.add((match[1], re.sub(r"\{[^}]+\}", "{}", path.split("?")[0])))
    return endpoints


def test_collection_covers_every_endpoint_in_the_readme(collection):
    covered = set()
    for item in _requests(collection["item"]):
        request = item["request"]
        path = "/" + "/".join(request["url"]["path"])
        covered.add((request["method"], re.sub(r"\{\{[^}]+\}\}", "{}", path)))
    endpoints = readme_endpoints()
    assert len(endpoints) >= 20, endpoints
    assert endpoints - covered == set()


def test_every_request_has_a_test_script(collection):
    for item in _requests(collection["item"]):
        scripts = [e for e in item.get("event", []) if e["listen"] == "test"]
        assert scripts and "pm.test(" in "\n".join(scripts[0]["script"]["exec"]), item["name"]


def test_the_environment_holds_no_secret():
    values = {v["key"]: v["value"] for v in json.loads(ENVIRONMENT.read_text())["values"]}
    assert values["baseUrl"].startswith("http://localhost")
    assert values["staffPassword"] == ""


def test_newman_is_pinned_and_locked():
    package = json.loads((POSTMAN / "package.json").read_text())
    pinned = package["devDependencies"]["newman"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "an exact version"
    lock = json.loads((POSTMAN / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/newman"]["version"] == pinned


def test_newman_runs_the_collection_without_a_failure(api_server, collection, tmp_path):
    assert NEWMAN.exists(), "newman is not installed: run `npm ci --prefix postman` (make test does)"
    assert shutil.which("node"), "node is not installed"
    report = tmp_path / "newman.json"
    result = subprocess.run(
        [
            str(NEWMAN),
            "run",
            str(COLLECTION),
            "--environment",
            str(ENVIRONMENT),
            "--env-var",
            f"baseUrl={api_server.base_url}",
            "--env-var",
            f"staffUsername={STAFF_USERNAME}",
            "--env-var",
            f"staffPassword={STAFF_PASSWORD}",
            "--color",
            "off",
            "--reporters",
            "cli,json",
            "--reporter-json-export",
            str(report),
        ],
        cwd=POSTMAN,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    run = json.loads(report.read_text())["run"]
    assert run["failures"] == []
    stats = run["stats"]
    assert stats["requests"]["total"] == len(list(_requests(collection["item"])))
    assert stats["requests"]["failed"] == 0
    assert stats["assertions"]["failed"] == 0
    assert stats["assertions"]["total"] >= 200, stats["assertions"]
