#!/usr/bin/env bash
# The PostgreSQL server the test suite needs (tests only: `make test` runs this; dlcompat itself needs none).
# The tests start a throwaway cluster of it on 127.0.0.1 in a temporary folder and stop it after
# (tests/store/conftest.py), so no cluster of the system is created or started here.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "the tests need a PostgreSQL server (initdb, pg_ctl): install it with your package manager" >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Debian's postgresql-common creates and starts a "main" cluster on install unless told not to
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/dlcompat-tests.conf >/dev/null
echo "installing the PostgreSQL server for the tests (Debian package postgresql)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
