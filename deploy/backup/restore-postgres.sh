#!/usr/bin/env bash
# Restores a backup made by backup-postgres.sh into an existing, EMPTY database.
#
#   deploy/backup/restore-postgres.sh BACKUP_FILE DATABASE_URL
#
# Create the target first (createdb -O tandem tandem_restored), restore, check, then point
# TANDEM_DATABASE_URL at it (or rename databases while tandem-cloud is stopped). Restoring
# into a fresh database rather than over the live one keeps the old data until the new one
# is known to be good. Runs in one transaction: it applies completely or not at all.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 BACKUP_FILE DATABASE_URL" >&2
    exit 2
fi
backup=$1
url=$2

if [ ! -f "$backup" ]; then
    echo "error: no backup at $backup" >&2
    exit 1
fi

tables=$(psql --no-psqlrc --quiet --tuples-only --no-align --dbname="$url" \
    --command="SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ "$tables" != "0" ]; then
    echo "error: the target database already has $tables tables; restore into an empty one" >&2
    exit 1
fi

pg_restore --no-owner --no-privileges --single-transaction --exit-on-error \
    --dbname="$url" "$backup"
psql --no-psqlrc --quiet --dbname="$url" --command="ANALYZE" >/dev/null
echo "restored $backup into the database"
