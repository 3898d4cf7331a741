#!/usr/bin/env bash
# Install everything the tests need, start a throw-away PostgreSQL on loopback, run the whole
# suite (every storage test on SQLite and on PostgreSQL), lint, stop the server.
# Used by `make test` and by .ci/run. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# --- system packages: PostgreSQL server and Chromium from apt when missing -----------------
missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing with apt: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Python environment ---------------------------------------------------------------------
make --no-print-directory install

# --- PostgreSQL ----------------------------------------------------------------------------
pgdir=$(mktemp -d /tmp/crmkit-pg.XXXXXX)
port=${CRMKIT_TEST_PG_PORT:-54329}
while (echo > /dev/tcp/127.0.0.1/"$port") 2>/dev/null; do port=$((port + 1)); done
cleanup() { "$root/.ci/postgres.sh" stop "$pgdir" || true; rm -rf "$pgdir"; }
trap cleanup EXIT
export CRMKIT_TEST_DATABASE_URL
CRMKIT_TEST_DATABASE_URL=$("$root/.ci/postgres.sh" start "$pgdir" "$port")
export CRMKIT_REQUIRE_POSTGRES=1
export CRMKIT_REQUIRE_BROWSER=1
export HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci}  # reproducible examples (conftest.py)
echo "PostgreSQL for the tests: $CRMKIT_TEST_DATABASE_URL"

# --- lint and tests --------------------------------------------------------------------------
# lint failures fail the run, but after the tests, so one run reports both
lint=0
.venv/bin/ruff check . || lint=1
.venv/bin/ruff format --check . || lint=1
mkdir -p artifacts
.venv/bin/python -m pytest -n 2 -q --durations=15 "$@"
if [ "$lint" != 0 ]; then echo "ruff found problems (see above)"; exit 1; fi
