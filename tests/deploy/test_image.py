"""The image's commands, run outside Docker: build-time collectstatic, the migration service on a
fresh PostgreSQL database, `check --deploy`, gunicorn with gunicorn.conf.py, the health checks and
the relay worker.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import psycopg

from tests.deploy import support


def _command(keyword: str):
    return next(i for i in support.dockerfile_instructions() if i.keyword == keyword)


def test_collectstatic_collects_compressed_files_at_build_time(image_tree):
    result = image_tree.collectstatic
    assert result.returncode == 0, result.stderr
    static = image_tree.path / "staticfiles"
    for asset in ("admin/css/base.css", "rest_framework/css/bootstrap.min.css"):
        assert (static / asset).is_file(), asset
        # DEBUG=false selects whitenoise's compressed storage: the .gz twin is served to browsers.
        assert (static / f"{asset}.gz").is_file(), f"{asset}.gz"
    assert "static files copied" in result.stdout


def test_migrations_run_from_scratch_on_a_fresh_postgresql_database(deploy_database, image_tree):
    assert deploy_database.migrate.returncode == 0, deploy_database.migrate.stderr
    assert "Applying transactions.0001_initial... OK" in deploy_database.migrate.stdout
    env = support.image_environment(**support.production_env(deploy_database.url))
    unapplied = support.run(["python", "manage.py", "migrate", "--check", "--noinput"], cwd=image_tree.path, env=env)
    assert unapplied.returncode == 0, unapplied.stdout + unapplied.stderr
    missing = support.run(
        ["python", "manage.py", "makemigrations", "--check", "--dry-run"], cwd=image_tree.path, env=env
    )
    assert missing.returncode == 0, f"models changed without a migration:\n{missing.stdout}"
    with psycopg.connect(deploy_database.url) as conn:
        currencies = [row[0] for row in conn.execute("SELECT code FROM currencies_currency ORDER BY id")]
        triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone()[0]
    assert currencies[0] == "USDT", "the seed data migration ran"
    assert triggers >= 2, "the append-only triggers exist"


def test_check_deploy_is_clean_with_production_settings(deploy_database, image_tree):
    # Production proper: HTTPS redirect on (the default with DEBUG off), a real host name.
    env = support.image_environment(**support.production_env(deploy_database.url, ALLOWED_HOSTS="wallet.example.com"))
    del env["SECURE_SSL_REDIRECT"]
    result = support.run(
        ["python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=image_tree.path, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_gunicorn_runs_the_configured_workers(api_server):
    deadline = time.monotonic() + 20
    while len(workers := support.child_pids(api_server.process.pid)) != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(workers) == 2, workers
    log = api_server.log.read_text()
    assert f"Listening at: http://127.0.0.1:{api_server.port}" in log
    assert "Using worker: sync" in log


def test_gunicorn_serves_probes_and_public_endpoints(api_server):
    status, headers, body = support.http_get(f"{api_server.base_url}/health")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Trace-ID"])

    status, _, body = support.http_get(f"{api_server.base_url}/ready")
    ready = json.loads(body)
    assert status == 200, ready
    assert ready["status"] == "ready" and ready["database"] == "connected"
    assert ready["kafka"] == "connected", ready

    status, _, body = support.http_get(f"{api_server.base_url}/currencies")
    currencies = json.loads(body)
    assert status == 200 and currencies[0]["code"] == "USDT"

    status, headers, _ = support.http_get(f"{api_server.base_url}/no-such-path")
    assert status == 404 and headers["Content-Type"].startswith("application/problem+json")


def test_swagger_ui_page_and_its_assets_are_served(api_server):
    status, headers, body = support.http_get(f"{api_server.base_url}/swagger/", headers={"Accept": "text/html"})
    page = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "SwaggerUIBundle" in page or "swagger-ui" in page
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', page)
    assert scripts
    for src in scripts:
        url = src if src.startswith("http") else f"{api_server.base_url}{src}"
        if not url.startswith(api_server.base_url):
            continue  # a CDN asset; nothing this image serves
        status, headers, asset = support.http_get(url, headers={"Accept-Encoding": "gzip"})
        assert status == 200, url
        assert "javascript" in headers["Content-Type"], url
        assert headers.get("Content-Encoding") == "gzip", f"{url}: whitenoise serves the compressed file"
        assert len(asset) > 1000

    status, _, body = support.http_get(f"{api_server.base_url}/openapi.json", headers={"Accept": "application/json"})
    assert status == 200 and json.loads(body)["openapi"].startswith("3.")


def test_metrics_add_up_across_gunicorn_workers(api_server):
    """With PROMETHEUS_MULTIPROC_DIR (set in compose), every scrape sums all workers' counters."""
    directory = Path(api_server.env["PROMETHEUS_MULTIPROC_DIR"])
    requests = 12
    for _ in range(requests):
        assert support.http_get(f"{api_server.base_url}/currencies")[0] == 200
    metric = re.compile(
        r'^django_http_requests_total_by_view_transport_method_total\{[^}]*view="currency-list"[^}]*\} (\S+)$'
    )
    for _ in range(6):
        status, _, body = support.http_get(f"{api_server.base_url}/metrics")
        assert status == 200
        served = sum(float(m[1]) for line in body.decode().splitlines() if (m := metric.match(line)))
        assert served >= requests, "a scrape saw only part of the workers' requests"
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("counter_*.db")}
    assert pids & set(support.child_pids(api_server.process.pid)), "workers write their counters to the directory"


def test_image_and_compose_health_checks_pass_against_the_server(api_server):
    image_probe = _command("HEALTHCHECK").exec_form()
    compose_probe = support.compose()["services"]["api"]["healthcheck"]["test"]
    assert compose_probe[0] == "CMD"
    for probe in (image_probe, compose_probe[1:]):
        result = support.run(probe, cwd=api_server.tree, env=api_server.env, timeout=30)
        assert result.returncode == 0, result.stderr

    # The same probe fails when nothing answers on the port.
    down = {**api_server.env, "GUNICORN_BIND": f"127.0.0.1:{support.free_port()}"}
    result = support.run(image_probe, cwd=api_server.tree, env=down, timeout=30)
    assert result.returncode != 0


def test_relay_health_check_reports_events_stuck_in_the_outbox(deploy_database, image_tree):
    probe = support.compose()["services"]["relay"]["healthcheck"]["test"]
    assert probe[0] == "CMD"
    env = support.image_environment(**support.production_env(deploy_database.url))
    assert support.run(probe[1:], cwd=image_tree.path, env=env, timeout=30).returncode == 0

    with psycopg.connect(deploy_database.url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO core_outboxevent (event_id, topic, key, payload, headers, state, attempts, last_error,"
            " created_at) VALUES (gen_random_uuid(), 'tx.created', 'stuck', '{}', '{}', 'pending', 3, 'down',"
            " now() - interval '10 minutes') RETURNING id"
        ).fetchone()
        try:
            result = support.run(probe[1:], cwd=image_tree.path, env=env, timeout=30)
            assert result.returncode == 1, result.stderr
        finally:
            conn.execute("DELETE FROM core_outboxevent WHERE id = %s", row)


def test_expiry_health_check_reports_holds_left_past_their_expiry(deploy_database, image_tree):
    probe = support.compose()["services"]["expire-holds"]["healthcheck"]["test"]
    assert probe[0] == "CMD"
    env = support.image_environment(**support.production_env(deploy_database.url))
    assert support.run(probe[1:], cwd=image_tree.path, env=env, timeout=30).returncode == 0

    with psycopg.connect(deploy_database.url, autocommit=True) as conn:
        # A hold ten minutes past its expiry, as if no worker had run (written without the history a
        # reservation has: the probe reads the holds alone, and the rows are removed afterwards).
        user = conn.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, is_staff,"
            " is_active, date_joined, email, token_version) VALUES ('!', false, 'stale_hold_probe', '', '',"
            " false, true, now(), 'stale@example.com', 0) RETURNING id"
        ).fetchone()[0]
        wallet = conn.execute(
            "INSERT INTO wallets_wallet (user_id, currency_id, balance, held, audit_head, entries, postings,"
            " created_at, updated_at) VALUES (%s, 1, 5, 5, repeat('0', 64), 0, 0, now(), now()) RETURNING id",
            [user],
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO holds_hold (uid, status, payer_id, wallet_id, currency_id, amount, captured, memo,"
            " expires_at, trace_id, created_at, updated_at) VALUES (gen_random_uuid(), 'active', %s, %s, 1, 5, 0,"
            " '', now() - interval '10 minutes', '', now() - interval '1 hour', now() - interval '1 hour')",
            [user, wallet],
        )
        try:
            result = support.run(probe[1:], cwd=image_tree.path, env=env, timeout=30)
            assert result.returncode == 1, result.stderr
        finally:
            conn.execute("DELETE FROM holds_hold WHERE payer_id = %s", [user])
            conn.execute("DELETE FROM wallets_wallet WHERE id = %s", [wallet])
            conn.execute("DELETE FROM accounts_user WHERE id = %s", [user])


def test_relay_worker_starts_with_the_compose_environment(api_server, image_tree):
    relay = support.compose()["services"]["relay"]["command"]
    result = support.run([*relay, "--once"], cwd=image_tree.path, env=api_server.env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["failed"] == 0


def test_gunicorn_stops_cleanly_on_sigterm(image_tree, deploy_database, tmp_path):
    """`docker stop` sends SIGTERM: gunicorn finishes its workers and exits 0 within the grace period."""
    port = support.free_port()
    env = support.image_environment(
        **support.production_env(deploy_database.url, GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS="1")
    )
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            support.container_command(_command("CMD").exec_form()),
            cwd=image_tree.path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        support.wait_for_http(f"http://127.0.0.1:{port}/health", process, log)
        process.terminate()
        assert process.wait(20) == 0, support.tail(log)
    finally:
        support.stop(process)
