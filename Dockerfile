# Wallet API image: one image for the API (gunicorn), the outbox relay and the one-shot migration.
#
#   docker build -t wallet-api .
#   docker compose up            # the whole stack, see docs/operating.md
#
# The same commands run outside Docker in tests/deploy/ (no Docker engine is needed to check them).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the pinned dependencies in a virtualenv -----------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Every pin ships a manylinux wheel (libpq inside psycopg[binary], librdkafka inside confluent-kafka),
# so nothing is compiled and no compiler or -dev package exists in either stage.
RUN /opt/venv/bin/pip install --only-binary=:all: --requirement /tmp/requirements.txt

# --- runtime: the interpreter, the virtualenv and the source, run as a non-root user ----------
FROM ${PYTHON_IMAGE} AS runtime

# Production mode, stated although it is the default: the container refuses to start until
# SECRET_KEY, JWT_SECRET, RECEIPT_SIGNING_KEY and DATABASE_URL are supplied, instead of running with
# development secrets.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=wallet_project.settings.base \
    DJANGO_ENV=production \
    DEBUG=false \
    GUNICORN_BIND=0.0.0.0:8000 \
    GUNICORN_WORKER_TMP_DIR=/dev/shm

RUN groupadd --system --gid 10001 wallet \
    && useradd --system --uid 10001 --gid wallet --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin wallet

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# Source and static files stay owned by root: the app user can read them, never change them.
COPY . .

# Static files are collected (and compressed for whitenoise) at build time with the production
# storage. Production settings refuse to load without secrets and a database, so placeholders are
# given to this one command only (it connects to nothing); they are not baked into the image's
# environment.
RUN DEBUG=false \
    SECRET_KEY=collectstatic-build-placeholder-not-a-secret-0123456789abcdef \
    JWT_SECRET=collectstatic-build-placeholder-not-a-secret \
    RECEIPT_SIGNING_KEY=0000000000000000000000000000000000000000000000000000000000000000 \
    DATABASE_URL=postgres://collectstatic-build-placeholder/unused \
    python manage.py collectstatic --noinput \
    && python -m compileall -q /app

# Numeric, so that orchestrators can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000

# Liveness only (/health touches nothing). Host is sent explicitly because ALLOWED_HOSTS applies:
# keep "localhost" in ALLOWED_HOSTS or set HEALTHCHECK_HOST to one of its entries.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request as u; port = os.environ.get('GUNICORN_BIND', ':8000').rsplit(':', 1)[1]; req = u.Request(f'http://127.0.0.1:{port}/health', headers={'Host': os.environ.get('HEALTHCHECK_HOST', 'localhost')}); sys.exit(0 if u.urlopen(req, timeout=4).status == 200 else 1)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py"]
