#!/usr/bin/env bash
# Online backup of tandem-cloud's SQLite database, safe while the server runs.
#
#   deploy/backup/backup-sqlite.sh DATABASE BACKUP_FILE
#   e.g. backup-sqlite.sh /var/lib/tandem/tandem.sqlite /var/backups/tandem/tandem-$(date -u +%Y%m%dT%H%M%SZ).sqlite
#
# The server keeps the database in WAL mode; sqlite3's `.backup` uses SQLite's online
# backup API, which copies a consistent snapshot (committed transactions in the WAL
# included) while readers and writers go on. Copying the file with cp is NOT safe: it
# misses the -wal file and can catch a page half-written. The copy is checked with
# `PRAGMA integrity_check` before it replaces BACKUP_FILE. Needs the sqlite3 command.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 DATABASE BACKUP_FILE" >&2
    exit 2
fi
database=$1
backup=$2

if [ ! -f "$database" ]; then
    echo "error: no database at $database" >&2
    exit 1
fi
command -v sqlite3 >/dev/null || { echo "error: sqlite3 is not installed" >&2; exit 1; }

mkdir -p "$(dirname "$backup")"
partial="$backup.partial.$$"
trap 'rm -f "$partial"' EXIT

# Waits up to 10 s for a writer's lock instead of failing at once.
sqlite3 -bail "$database" ".timeout 10000" ".backup '$partial'"
check=$(sqlite3 "$partial" "PRAGMA integrity_check;")
if [ "$check" != "ok" ]; then
    echo "error: the backup failed its integrity check: $check" >&2
    exit 1
fi
# A single file, no -wal beside it: the copy is a rollback-journal database.
sqlite3 "$partial" "PRAGMA journal_mode=DELETE;" >/dev/null
chmod 600 "$partial"
mv -f "$partial" "$backup"
trap - EXIT
echo "backed up $database to $backup ($(wc -c <"$backup") bytes)"
