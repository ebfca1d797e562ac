#!/usr/bin/env bash
# Restores a backup made by backup-sqlite.sh.
#
#   deploy/backup/restore-sqlite.sh BACKUP_FILE DATABASE
#
# STOP tandem-cloud first (systemctl stop tandem-cloud, or scale the deployment to 0):
# replacing the file under a running server loses its writes and confuses its
# connections. The backup is checked (`PRAGMA integrity_check`) before anything is
# touched; an existing DATABASE is kept beside it as DATABASE.before-restore-TIMESTAMP, and
# its -wal/-shm files are moved with it. Run the result's migrations with
# `tandem-cloud migrate` if the backup is older than the binary (serve does it too).
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 BACKUP_FILE DATABASE" >&2
    exit 2
fi
backup=$1
database=$2

if [ ! -f "$backup" ]; then
    echo "error: no backup at $backup" >&2
    exit 1
fi
command -v sqlite3 >/dev/null || { echo "error: sqlite3 is not installed" >&2; exit 1; }

check=$(sqlite3 -readonly "$backup" "PRAGMA integrity_check;")
if [ "$check" != "ok" ]; then
    echo "error: $backup failed its integrity check: $check" >&2
    exit 1
fi

mkdir -p "$(dirname "$database")"
partial="$database.restore.$$"
trap 'rm -f "$partial"' EXIT
cp "$backup" "$partial"
chmod 600 "$partial"

if [ -e "$database" ]; then
    kept="$database.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"
    mv "$database" "$kept"
    for suffix in -wal -shm; do
        if [ -e "$database$suffix" ]; then mv "$database$suffix" "$kept$suffix"; fi
    done
    echo "kept the previous database as $kept"
fi
mv "$partial" "$database"
trap - EXIT

check=$(sqlite3 "$database" "PRAGMA integrity_check;")
if [ "$check" != "ok" ]; then
    echo "error: the restored database failed its integrity check: $check" >&2
    exit 1
fi
echo "restored $backup to $database"
