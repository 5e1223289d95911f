#!/usr/bin/env bash
# Installs everything pg_vigil needs to build, test and demo on a Debian
# machine, skipping whatever is already there. Safe to run repeatedly.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PGRX_VERSION=0.18.1
PACKAGES=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-tdigest postgresql-15-partman
          libclang-dev clang sudo
          golang-go golang-github-prometheus-alertmanager-dev prometheus-alertmanager python3-aiosmtpd
          prometheus prometheus-postgres-exporter prometheus-sql-exporter openssl python3 python3-venv)
# (golang: the e2e suite decodes webhook bodies with Alertmanager's own Go types;
# prometheus-alertmanager (with amtool) and python3-aiosmtpd: the alertmanager and email channels are tested against them;
# prometheus (with promtool), prometheus-postgres-exporter and prometheus-sql-exporter test contrib/prometheus;
# openssl makes the private CA and python3 serves TLS for the vigil.ca_file test;
# python3-venv holds PyPI's slack-sdk and jsonschema for the payload tests, below)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    say "Debian packages present"
fi

for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        say "adding rustup component $component"
        rustup component add "$component"
    fi
done

if cargo pgrx --version 2>/dev/null | grep -q "$PGRX_VERSION"; then
    say "cargo-pgrx $PGRX_VERSION present"
else
    say "installing cargo-pgrx $PGRX_VERSION (takes a few minutes)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
fi

PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
if grep -qs "^pg15 = \"$PG_CONFIG\"" "$PGRX_HOME/config.toml"; then
    say "cargo pgrx already initialised for $PG_CONFIG"
else
    say "cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG"
fi

# PyPI's slack-sdk and jsonschema validate the Slack, PagerDuty and Teams
# bodies in the e2e suite (pgrx-tests/tests/notify/payload_validators.py),
# in a venv of Debian's python3.
VENV=target/test-venv
REQUIREMENTS=scripts/test-requirements.txt
cd "$(dirname "$0")/.."
if [ -f "$VENV/requirements.txt" ] && cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
    say "$VENV has $REQUIREMENTS"
else
    say "making $VENV from $REQUIREMENTS"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --no-deps -r "$REQUIREMENTS"
    "$VENV/bin/pip" check
    cp "$REQUIREMENTS" "$VENV/requirements.txt"
fi
