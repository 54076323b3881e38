"""docker-compose.yml read as a file: schema, health checks, start order, wiring, Kafka in KRaft mode."""

from __future__ import annotations

import base64
import importlib.resources
import json
import re
import subprocess
import sys

import jsonschema
import pytest

from tests.deploy import support

APP_SERVICES = ("migrate", "api", "relay", "expire-holds", "deliver-webhooks", "reconcile-worker")
SECRETS = ("SECRET_KEY", "JWT_SECRET", "RECEIPT_SIGNING_KEY", "POSTGRES_PASSWORD")


@pytest.fixture(scope="module")
def stack() -> dict:
    return support.compose()


def compose_spec_schema() -> dict:
    """The official compose-spec JSON schema, as vendored by check-jsonschema (requirements-dev.txt)."""
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "compose-spec.json").read_text())


def test_validates_against_the_compose_spec_schema(stack):
    schema = compose_spec_schema()
    assert "compose" in schema.get("$id", "") + schema.get("title", "").lower()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(stack), key=lambda e: list(e.path))
    assert [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors] == []


def test_the_schema_check_can_fail(stack):
    """A guard on the test above: a typo in a service key is caught."""
    broken = json.loads(json.dumps(stack))
    broken["services"]["api"]["healthcheck"]["intervall"] = "5s"
    schema = compose_spec_schema()
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def _one_shot(stack, name: str) -> bool:
    service = stack["services"][name]
    awaited = [
        deps[name].get("condition")
        for other in stack["services"].values()
        if isinstance(deps := other.get("depends_on", {}), dict) and name in deps
    ]
    return service.get("restart") == "no" and awaited and set(awaited) == {"service_completed_successfully"}


def test_every_service_has_a_health_check_or_is_one_shot(stack):
    for name, service in stack["services"].items():
        health = service.get("healthcheck", {})
        if _one_shot(stack, name):
            continue
        assert health and not health.get("disable"), f"{name} has no health check"
        assert health["test"][0] in ("CMD", "CMD-SHELL"), name
        assert {"interval", "timeout", "retries"} <= set(health), name
    assert _one_shot(stack, "migrate")


def test_app_services_run_the_one_image_built_from_the_dockerfile(stack):
    services = stack["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    builds = {json.dumps(services[name]["build"], sort_keys=True) for name in APP_SERVICES}
    assert len(images) == 1 and len(builds) == 1
    assert services["api"]["build"]["context"] == "."
    assert services["api"]["build"].get("dockerfile", "Dockerfile") == "Dockerfile"
    # The API runs the image's CMD (gunicorn); the others override it.
    assert "command" not in services["api"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert services["relay"]["command"] == ["python", "manage.py", "relay_outbox"]
    assert services["expire-holds"]["command"] == ["python", "manage.py", "expire_holds"]
    assert services["deliver-webhooks"]["command"] == ["python", "manage.py", "deliver_webhooks"]
    worker = ["python", "manage.py", "reconcile", "--queued", "--interval", "10"]
    assert services["reconcile-worker"]["command"] == worker


def test_start_order_waits_for_health_and_for_the_migration(stack):
    services = stack["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec.get("condition") in ("service_healthy", "service_completed_successfully"), (name, dependency)
            assert dependency in services
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "relay", "expire-holds", "deliver-webhooks", "reconcile-worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["relay"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_app_environment_is_production_and_secrets_are_required(stack):
    raw = support.COMPOSE_FILE.read_text()
    variables = support.compose_variables(raw)
    for secret in SECRETS:
        assert variables.get(secret) == ":?", f"{secret} must be required (${{{secret}:?...}}), never defaulted"
    for name in APP_SERVICES:
        env = stack["services"][name]["environment"]
        assert env["DJANGO_ENV"] == "production" and env["DEBUG"] == "false"
        assert env["DATABASE_URL"].startswith("postgres://wallet:${POSTGRES_PASSWORD")
        assert env["DATABASE_URL"].endswith("@postgres:5432/wallet")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["SECURE_SSL_REDIRECT"].startswith("${SECURE_SSL_REDIRECT:-false")
        assert "ALLOWED_HOSTS" in env
        for secret in ("SECRET_KEY", "JWT_SECRET", "RECEIPT_SIGNING_KEY"):
            assert env[secret] == f"${{{secret}:?set {secret} in .env (see .env.example)}}"
    postgres = stack["services"]["postgres"]["environment"]
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    with pytest.raises(ValueError, match="SECRET_KEY"):
        support.service_environment("api", {})


def test_every_app_variable_is_one_the_code_reads(stack):
    """A typo in a variable name would be silently ignored by the settings."""
    read = (support.ROOT / "wallet_project/settings/base.py").read_text()
    read += (support.ROOT / "gunicorn.conf.py").read_text()
    for name in APP_SERVICES:
        for key in stack["services"][name]["environment"]:
            assert f'"{key}"' in read, f"{name}: {key} is not read by the settings or gunicorn.conf.py"


def test_env_example_lists_every_variable_and_generates_real_secrets():
    names = support.env_example_names()
    assert set(support.compose_variables()) <= names
    text = support.ENV_EXAMPLE.read_text()
    for secret in SECRETS:
        assert re.search(rf"^#\s+{secret}\s+python3 -c 'import secrets;", text, flags=re.MULTILINE), secret
    values = support.env_example()
    for secret in SECRETS:
        assert values[secret] == "replace-me", "only placeholders are committed"


def test_an_unedited_env_example_cannot_go_live(tmp_path):
    """Its placeholders pass compose's `:?` check, so the settings must refuse them."""
    env = support.image_environment(**support.service_environment("api", support.env_example()))
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=support.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY" in result.stderr


def test_a_malformed_receipt_key_is_refused_at_start():
    secrets = support.production_secrets()
    env = support.image_environment(
        **support.service_environment("api", {**support.env_example(), **secrets, "RECEIPT_SIGNING_KEY": "z" * 64})
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=support.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "RECEIPT_SIGNING_KEY must be 64 hex characters" in result.stderr


def _listeners(value: str) -> dict[str, str]:
    return dict(item.split("://", 1) for item in value.split(","))


def test_kafka_is_a_single_kraft_node(stack):
    kafka = stack["services"]["kafka"]
    env = {key: str(value) for key, value in kafka["environment"].items()}
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka" and int(tag.split(".")[0]) >= 4, "a current apache/kafka (KRaft only)"
    assert not [key for key in env if "ZOOKEEPER" in key]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}

    node_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node_id == env["KAFKA_NODE_ID"]
    listeners = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert set(listeners) == set(protocols)
    assert controller in listeners and controller not in advertised
    assert set(advertised) <= set(listeners)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    assert voter == f"kafka:{listeners[controller].rsplit(':', 1)[1]}"

    internal = advertised[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
    for name in ("api", "relay"):
        assert stack["services"][name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == internal
    # Single node: internal topics cannot have more replicas than brokers.
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1"
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "CLUSTER_ID is a base64url UUID"
    assert env["KAFKA_LOG_DIRS"] in {volume.split(":")[1] for volume in kafka["volumes"]}


def test_stateful_services_keep_data_on_named_volumes(stack):
    declared = set(stack.get("volumes", {}))
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("kafka", "/var/lib/kafka/data")):
        mounts = dict(volume.rsplit(":", 1)[::-1] for volume in stack["services"][name]["volumes"])
        assert mounts[path] in declared, f"{name} data on a named volume"
    image, _, tag = stack["services"]["postgres"]["image"].partition(":")
    assert image == "postgres" and tag.split("-")[0] in {"15", "16"}
