#!/usr/bin/env bash
# PostgreSQL and Redis on 127.0.0.1 for the test suite: started (Debian's cluster, a throwaway Redis) when down.
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    echo "PostgreSQL is not running on 127.0.0.1:5432 and no Debian cluster is installed to start" >&2
    echo "(apt-get install -y postgresql, or set DATABASE_URL to a server of yours)" >&2
    exit 1
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "Redis is not running on 127.0.0.1:6379 and redis-server is not installed (apt-get install -y redis-server)" >&2
    exit 1
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
