#!/usr/bin/env bash
# Make PostgreSQL's server binaries (initdb, pg_ctl, postgres) available for the tests.
# The tests start their own throwaway server from these binaries (see
# tests/objstore/pg_backend.py); nothing here starts or configures a cluster.
# Debian's package also creates the unprivileged `postgres` user the server runs as.
set -euo pipefail

have_binaries() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
            return 0
        fi
    fi
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
            return 0
        fi
    done
    return 1
}

if have_binaries; then
    echo "pg-setup: PostgreSQL binaries present"
else
    echo "pg-setup: installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends postgresql
    have_binaries || { echo "pg-setup: postgresql installed but initdb/pg_ctl not found" >&2; exit 1; }
fi

# The server refuses to run as root; the tests run it as this user.
if ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi
