#!/usr/bin/env bash
# What `make test` needs on this machine: PostgreSQL and RabbitMQ answering on 127.0.0.1, and RabbitMQ's management
# API (port 15672: every test gets its own vhost through it), which is off on a new machine; and Chromium for the
# browser tests. Starts (or installs) what is missing; `make test` and `make bench` run it first, CI through
# `make test`.
set -euo pipefail

wait_for() {  # wait_for NAME SECONDS COMMAND...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "test servers: $name did not come up within ${seconds}s" >&2; return 1
}

need() {  # need COMMAND PACKAGE: stop with the one line that says what is missing and how to get it
  command -v "$1" >/dev/null 2>&1 || { echo "test servers: $1 is missing — install it: apt-get install $2" >&2; exit 1; }
}
need pg_isready postgresql
need rabbitmqctl rabbitmq-server
need curl curl

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
wait_for PostgreSQL 60 pg_isready -h 127.0.0.1 -p 5432

if ! rabbitmqctl status >/dev/null 2>&1; then
  rabbitmq-server -detached || true
fi
wait_for RabbitMQ 90 rabbitmqctl status
if ! curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1; then
  rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
wait_for "RabbitMQ management API" 60 curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview

# The browser tests (tests/browser) drive Debian's Chromium through Playwright: `playwright install` cannot
# download a browser here, so the system's one is used (CHROMIUM, default /usr/bin/chromium), installed when absent.
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ]; then
  echo "test servers: installing Debian's chromium for the browser tests" >&2
  SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
  $SUDO apt-get install -y -qq chromium >/dev/null || { apt_update=1; $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }
fi
[ -x "$CHROMIUM" ] || { echo "test servers: $CHROMIUM is missing — install it: apt-get install chromium" >&2; exit 1; }
