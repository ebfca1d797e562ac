#!/usr/bin/env bash
# Backup of tandem-cloud's PostgreSQL database (for the PostgreSQL deployments), in
# pg_dump's custom format: compressed, consistent (one snapshot), restorable table by table.
#
#   deploy/backup/backup-postgres.sh DATABASE_URL BACKUP_FILE
#   e.g. backup-postgres.sh "$TANDEM_DATABASE_URL" /var/backups/tandem/tandem-$(date -u +%Y%m%dT%H%M%SZ).dump
#
# With compose.yaml:  docker compose -f deploy/compose.yaml exec -T postgres \
#   pg_dump -Fc -U tandem tandem > tandem.dump
# Keep the password out of the URL in scripts: libpq reads PGPASSWORD or ~/.pgpass.
# Needs pg_dump and pg_restore of the server's major version or newer.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 DATABASE_URL BACKUP_FILE" >&2
    exit 2
fi
url=$1
backup=$2

mkdir -p "$(dirname "$backup")"
partial="$backup.partial.$$"
trap 'rm -f "$partial"' EXIT

# No owners or grants in the dump: restore-postgres.sh restores into whatever role
# owns the target database.
pg_dump --format=custom --compress=6 --no-owner --no-privileges --file="$partial" --dbname="$url"
# Reading the archive's table of contents checks that it is complete.
pg_restore --list "$partial" >/dev/null
chmod 600 "$partial"
mv -f "$partial" "$backup"
trap - EXIT
echo "backed up the database to $backup ($(wc -c <"$backup") bytes)"
