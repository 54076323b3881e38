"""Rate-limit counters must be shared by every worker in production.

Local memory is one cache per process: behind gunicorn's workers every limit would be multiplied by
their number (login 5/m becoming N x 5). Production refuses it while limits are on, under
``check --deploy`` (``wallet.E001``) and when a server starts; with Redis all workers count together.
"""

import random
import subprocess
import time

from tests.live import BIN, ROOT, LiveServer, live_api, production_env

REDIS_URL = "redis://127.0.0.1:6379/7"
STORE_NOT_SHARED = "wallet.E001"


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "python"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_refuses_a_process_local_counter_store_while_limits_are_on():
    env = production_env("sec_unused", RATELIMIT_ENABLE="true", REDIS_URL="")
    del env["SECURE_SSL_REDIRECT"]
    refused = check_deploy(env)
    assert refused.returncode != 0
    assert STORE_NOT_SHARED in refused.stderr

    shared = check_deploy({**env, "REDIS_URL": REDIS_URL})
    assert shared.returncode == 0, shared.stdout + shared.stderr
    off = check_deploy({**env, "RATELIMIT_ENABLE": "false"})
    assert off.returncode == 0, off.stdout + off.stderr


def test_gunicorn_refuses_to_serve_with_a_process_local_counter_store():
    server = LiveServer(production_env("sec_unused", RATELIMIT_ENABLE="true", REDIS_URL=""), workers=2)
    try:
        server.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--no-control-socket"],
            cwd=ROOT,
            env=server.env,
            stdout=server.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while server.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.process.poll() is not None, "gunicorn is serving with per-worker rate-limit counters"
        assert server.process.returncode != 0
        assert STORE_NOT_SHARED in server.log_text()
    finally:
        server.cleanup()


def test_with_redis_every_worker_counts_against_one_budget(live_template):
    # A period of its own, so that no other run sharing this Redis counts in the same window.
    rate = f"6/{random.SystemRandom().randrange(300, 900)}s"
    with live_api(
        live_template, "rlshared", workers=3, RATELIMIT_ENABLE="true", REDIS_URL=REDIS_URL, RATELIMIT_DEFAULT=rate
    ) as api:
        # One connection per request: the kernel hands them to whichever of the three workers accepts.
        replies = [api.http.get("/currencies") for _ in range(10)]
    assert [r.status for r in replies] == [200] * 6 + [429] * 4
    assert [int(r.headers["x-ratelimit-remaining"]) for r in replies[:6]] == [5, 4, 3, 2, 1, 0]
    assert {r.code for r in replies[6:]} == {"RATE_LIMIT_EXCEEDED"}
