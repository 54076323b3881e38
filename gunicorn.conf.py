"""Gunicorn configuration used by the container image, the benchmark and production.

Sync workers: a transfer is a short CPU burst plus a few database round trips, and measurement on
2 cores showed sync workers beating gthread (which left CPU idle and had a long p99 tail).
Workers default to cores + 1: on 2 cores shared with PostgreSQL, 3 workers served more uniform
transfers than 4 (figures in docs/benchmarks.md). On a host of its own, the API may want more.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# A worker stuck longer than this is killed; database timeouts (5 s lock, 15 s statement) fire first.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# Worker heartbeat files; the image sets /dev/shm (a container's /tmp may sit on a slow overlay disk).
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR") or None
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
# Application logs are JSON lines from Django; gunicorn's own access log would duplicate them.
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
wsgi_app = "wallet_project.wsgi:application"
# Gunicorn's control socket defaults to one path per host user (~/.gunicorn/gunicorn.ctl): off unless
# asked for, so several servers (API, benchmark, tests) never fight over it.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "") == ""
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or "gunicorn.ctl"


# Prometheus metrics across workers (prometheus_client's multiprocess mode, see core/metrics.py): the
# directory must exist and hold no files from an earlier run when the workers start.
def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


# OpenTelemetry in each worker, after the fork: the SDK's export thread must belong to the worker (the
# wsgi module calls the same function; whichever comes first sets it up, once per process).
def post_fork(server, worker):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.base")
    from wallet_project.core.telemetry import configure

    configure()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
