#!/usr/bin/env bash
# First start of the postgres container (docker-entrypoint-initdb.d): one database per service, owned by
# $POSTGRES_USER. Each service owns its data; no service reads another's database.
set -euo pipefail

DATABASES="reservations inventory notifications bibliobus"

for db in $DATABASES; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
