#!/usr/bin/env bash
# Validates everything under deploy/, run by CI (.ci/run) and by hand:
#
#   bash deploy/check.sh
#
# What it checks, each with the real tool where one runs here (no Docker engine, no
# Kubernetes cluster, no systemd as PID 1):
#   - shell scripts (shellcheck), YAML (yamllint), the Dockerfile (hadolint)
#   - compose.yaml and .github/workflows/ci.yml against their JSON schemas
#   - Kubernetes manifests against the API schemas (kubernetes-validate --strict),
#     the sqlite/ variant rendered, the ConfigMap equal to config/tandem.toml
#   - the systemd unit (systemd-analyze verify, and its exposure score)
#   - Prometheus config, alert rules and their unit tests (promtool)
#   - the release binary (`cargo build --release -p tandem-cloud --locked`, what the
#     Dockerfile builds), started with config/tandem.toml: the Dockerfile's HEALTHCHECK
#     command, the metrics token, every metric and label the alerts and the dashboard use
#     against a real scrape, nginx/tandem.conf in front of it (nginx -t, then TLS,
#     redirect, SSE passing unbuffered, body limit), SQLite backup while it serves and
#     restore
#   - PostgreSQL backup and restore against the machine's server
#   - cargo deny (licenses, bans, sources; advisories when the advisory DB is reachable)
#
# Installs what is missing: Debian packages with apt-get, Python tools (pinned in
# deploy/tests/requirements.txt) into a virtualenv under ~/.cache, cargo-deny with cargo.
# Ends with "deploy: N passed, M failed"; exits 1 if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PATH="$HOME/.cargo/bin:$PATH"
cache="${TANDEM_DEPLOY_CACHE:-$HOME/.cache/tandem-ci/deploy}"
pg_url="${TANDEM_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
kubernetes_version=1.31.0

work=$(mktemp -d)

# Checks run in subshells (so that `set -e` holds inside them): what they start is
# recorded in files, and stopped here.
stop_server() {
    if [ -f "$work/server.pid" ]; then
        local pid
        pid=$(cat "$work/server.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$work/server.pid"
    fi
}
cleanup() {
    if [ -f "$work/nginx/nginx.pid" ]; then
        nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
    fi
    stop_server
    if [ -f "$work/pg-databases" ]; then
        while read -r db; do
            psql --no-psqlrc -q "$pg_url" -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true
        done <"$work/pg-databases"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

log() { printf '\n==> %s\n' "$*" >&2; }

passed=0
failed=0
failures=()
# check NAME COMMAND...: runs one check in a subshell with `set -e` (any failing command
# fails it), its output shown only when it fails.
check() {
    local name=$1
    shift
    local started=$SECONDS rc
    set +e
    (
        set -e
        "$@"
    ) >"$work/check.log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        printf 'ok    %-58s %4ss\n' "$name" $((SECONDS - started))
    else
        failed=$((failed + 1))
        failures+=("$name")
        printf 'FAIL  %-58s %4ss\n' "$name" $((SECONDS - started))
        sed 's/^/      /' "$work/check.log" | tail -n 60
    fi
}

# --- tools -------------------------------------------------------------------------------

log "tools"
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v promtool >/dev/null || missing+=(prometheus)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
command -v pg_dump >/dev/null || missing+=(postgresql-client)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    # Packages like nginx and prometheus start their daemon on install unless a
    # policy-rc.d says no (Docker-built images have one): a temporary one, removed after.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ -n "$made_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

requirements=deploy/tests/requirements.txt
venv="$cache/venv-$(sha256sum "$requirements" | cut -c1-12)"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    echo "installing the Python tools into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
fi
py="$venv/bin/python"

if ! command -v cargo-deny >/dev/null; then
    echo "installing cargo-deny (compiles once, a few minutes)" >&2
    cargo install --locked --quiet cargo-deny@0.20.2
fi

# --- static checks -----------------------------------------------------------------------

log "static checks"

check "shellcheck deploy/check.sh deploy/backup/*.sh" \
    shellcheck deploy/check.sh deploy/backup/*.sh

yaml_files=()
while IFS= read -r file; do yaml_files+=("$file"); done < <(
    find deploy -name '*.yml' -o -name '*.yaml' | sort
    echo .github/workflows/ci.yml
)
check "yamllint (${#yaml_files[@]} files)" \
    "$venv/bin/yamllint" --strict -c deploy/tests/yamllint.yml "${yaml_files[@]}"

check "hadolint deploy/Dockerfile" "$venv/bin/hadolint" deploy/Dockerfile

check_dockerignore() {
    # The context must keep what the build needs and drop the heavy parts.
    for needed in Cargo.toml Cargo.lock cloud-api shared lsp-server tests benches; do
        [ -e "$needed" ] || { echo "missing $needed"; return 1; }
        if grep -qx "$needed" .dockerignore; then echo ".dockerignore drops $needed"; return 1; fi
    done
    for dropped in .git target; do
        grep -qx "$dropped" .dockerignore || { echo ".dockerignore keeps $dropped"; return 1; }
    done
}
check ".dockerignore keeps the workspace, drops .git and target" check_dockerignore

check "compose.yaml against the Compose schema" \
    "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml

check_compose_files() {
    # Every file compose.yaml bind-mounts exists, and `docker compose config` (when the
    # Compose plugin is installed) agrees.
    "$py" - <<'EOF'
import os, sys, yaml
compose = yaml.safe_load(open("deploy/compose.yaml"))
bad = 0
for name, service in compose["services"].items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            path = os.path.join("deploy", source)
            if not os.path.exists(path):
                print(f"{name}: {source} does not exist ({path})")
                bad = 1
sys.exit(bad)
EOF
    if docker compose version >/dev/null 2>&1; then
        TANDEM_METRICS_TOKEN=x POSTGRES_PASSWORD=x GRAFANA_ADMIN_PASSWORD=x \
            docker compose -f deploy/compose.yaml config --quiet
    fi
}
check "compose.yaml's mounted files exist" check_compose_files

check "ci.yml against the GitHub workflow schema" \
    "$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/ci.yml

check_kubernetes() {
    local dir=deploy/kubernetes
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$kubernetes_version" \
        "$dir"/configmap.yaml "$dir"/deployment.yaml "$dir"/service.yaml "$dir"/hpa.yaml \
        "$dir"/pdb.yaml "$dir"/ingress.yaml "$dir"/secret.example.yaml "$dir"/sqlite/pvc.yaml
    # The sqlite/ variant: apply its JSON patch to the Deployment (as kustomize does)
    # and validate the result.
    "$py" - "$dir" "$work/sqlite-deployment.yaml" <<'EOF'
import copy, os, sys, yaml
base, out = sys.argv[1], sys.argv[2]
for kustomization in (os.path.join(base, "kustomization.yaml"), os.path.join(base, "sqlite/kustomization.yaml")):
    k = yaml.safe_load(open(kustomization))
    for resource in k["resources"]:
        path = os.path.join(os.path.dirname(kustomization), resource)
        assert os.path.isfile(path), f"{kustomization}: {resource} does not exist"
k = yaml.safe_load(open(os.path.join(base, "sqlite/kustomization.yaml")))
deployment = yaml.safe_load(open(os.path.join(base, "deployment.yaml")))
(patch,) = k["patches"]
for op in yaml.safe_load(patch["patch"]):
    assert op["op"] == "replace", op
    *parents, last = [p for p in op["path"].split("/") if p]
    node = deployment
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if isinstance(node, list):
        assert node[key]["name"] == op["value"]["name"], f"{op['path']} is {node[key]['name']}, not {op['value']['name']}"
    else:
        assert key in node, op["path"]
    node[key] = copy.deepcopy(op["value"])
yaml.safe_dump(deployment, open(out, "w"))
EOF
    "$venv/bin/kubernetes-validate" --strict --quiet -k "$kubernetes_version" "$work/sqlite-deployment.yaml"
    # One configuration, two copies: the ConfigMap carries config/tandem.toml verbatim.
    "$py" -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(open(sys.argv[1]))["data"]["config.toml"])' \
        "$dir"/configmap.yaml >"$work/configmap.toml"
    diff -u deploy/config/tandem.toml "$work/configmap.toml"
}
check "Kubernetes manifests (schema $kubernetes_version, strict)" check_kubernetes

check_systemd() {
    # verify wants ExecStart's binary to exist: check a copy pointing at /bin/true.
    mkdir -p "$work/systemd"
    sed 's#^ExecStart=/usr/local/bin/tandem-cloud#ExecStart=/bin/true#' \
        deploy/systemd/tandem-cloud.service >"$work/systemd/tandem-cloud.service"
    # It reports unknown keys and bad values as warnings with exit code 0: any output fails.
    systemd-analyze verify "$work/systemd/tandem-cloud.service" >"$work/systemd/verify.log" 2>&1 || {
        cat "$work/systemd/verify.log"
        return 1
    }
    if [ -s "$work/systemd/verify.log" ]; then
        cat "$work/systemd/verify.log"
        return 1
    fi
    # Exposure score (0 safest, 10 worst): the unit must stay at 1.5 or below.
    systemd-analyze security --offline=true --threshold=15 "$work/systemd/tandem-cloud.service" |
        tail -n 1
}
check "systemd unit (verify, exposure <= 1.5)" check_systemd

check_prometheus() {
    promtool check rules deploy/prometheus/alerts.yml
    promtool test rules deploy/prometheus/alerts.test.yml
    # The config names its container paths: check a copy pointing at the files here.
    mkdir -p "$work/prometheus"
    cp deploy/prometheus/alerts.yml "$work/prometheus/"
    echo token >"$work/prometheus/metrics_token"
    sed -e "s#/etc/prometheus/#$work/prometheus/#" -e "s#/run/secrets/#$work/prometheus/#" \
        deploy/prometheus/prometheus.yml >"$work/prometheus/prometheus.yml"
    promtool check config "$work/prometheus/prometheus.yml"
}
check "Prometheus config, rules and rule unit tests (promtool)" check_prometheus

check_grafana() {
    "$py" - <<'EOF'
import json, yaml
dash = json.load(open("deploy/grafana/dashboards/tandem-cloud.json"))
source = yaml.safe_load(open("deploy/grafana/provisioning/datasources/prometheus.yml"))
provider = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/tandem.yml"))
compose = yaml.safe_load(open("deploy/compose.yaml"))
uids = {s["uid"] for s in source["datasources"]}
def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))
ids = set()
for panel in walk(dash["panels"]):
    assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
    ids.add(panel["id"])
    for target in panel.get("targets", []):
        assert target["datasource"]["uid"] in uids, f"{panel['title']}: unknown data source"
mounts = compose["services"]["grafana"]["volumes"]
path = provider["providers"][0]["options"]["path"]
assert any(m.startswith("./grafana/dashboards:" + path) for m in mounts), f"{path} not mounted"
print(f"{len(ids)} panels")
EOF
}
check "Grafana dashboard and provisioning" check_grafana

# --- the release binary ------------------------------------------------------------------

log "release build (what deploy/Dockerfile builds)"
build_started=$SECONDS
check "cargo build --release -p tandem-cloud --locked" \
    cargo build --release -p tandem-cloud --locked
echo "release build: $((SECONDS - build_started)) s" >&2
bin="$CARGO_TARGET_DIR/release/tandem-cloud"

log "tandem-cloud with deploy/config/tandem.toml"
export TANDEM_METRICS_TOKEN="check-$RANDOM$RANDOM"
# The deploy configuration plus a tier that rate-limits fast, for a real 429.
cat deploy/config/tandem.toml - >"$work/config.toml" <<'EOF'

[tiers.check]
requests_per_hour = 1000
requests_per_day = 1000
burst_per_minute = 2
tokens_per_day = 1000000
max_file_size_mb = 1
max_context_tokens = 4000
providers = ["*"]
features = ["*"]
EOF
db="$work/data/tandem.sqlite"
mkdir -p "$work/data"

start_server() {
    [ -x "$bin" ] || { echo "no release binary"; return 1; }
    TANDEM_CONFIG="$work/config.toml" TANDEM_DATABASE_URL="sqlite://$db" TANDEM_LOG=warn \
        "$bin" serve --bind 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
    local pid=$!
    echo "$pid" >"$work/server.pid"
    for _ in $(seq 100); do
        if grep -q '^Listening on http://' "$work/serve.out"; then break; fi
        kill -0 "$pid" 2>/dev/null || { cat "$work/serve.err"; return 1; }
        sleep 0.1
    done
    local base
    base=$(sed -n 's#^Listening on \(http://.*\)$#\1#p' "$work/serve.out")
    [ -n "$base" ] || { cat "$work/serve.err"; return 1; }
    echo "$base" >"$work/base"
    curl -fsS "$base/health"
    curl -fsS "$base/ready"
}
check "serve starts with the deploy config, /health and /ready answer" start_server
base=$(cat "$work/base" 2>/dev/null || echo http://127.0.0.1:9)
port=${base##*:}

check_healthcheck() {
    # The Dockerfile's HEALTHCHECK command, taken from the Dockerfile and run as Docker
    # would (exec form), against the server; then against a closed port, where it must fail.
    "$py" - deploy/Dockerfile >"$work/healthcheck.json" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
(cmd,) = re.findall(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", text, re.M)
print(json.dumps(json.loads(cmd)))
EOF
    local -a cmd
    mapfile -t cmd < <("$py" -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))))' "$work/healthcheck.json")
    TANDEM_BIND="0.0.0.0:$port" timeout 10 "${cmd[@]}"
    if TANDEM_BIND="0.0.0.0:1" timeout 10 "${cmd[@]}" 2>/dev/null; then
        echo "the healthcheck passed against a closed port"
        return 1
    fi
}
check "Dockerfile HEALTHCHECK command against the server" check_healthcheck

check_metrics_token() {
    local status
    status=$(curl -s -o /dev/null -w '%{http_code}' "$base/metrics")
    [ "$status" = 401 ] || { echo "/metrics without the token: $status, want 401"; return 1; }
    curl -fsS -o /dev/null -H "Authorization: Bearer $TANDEM_METRICS_TOKEN" "$base/metrics"
}
check "/metrics wants the token (config/tandem.toml: token_env)" check_metrics_token

completion() { # completion KEY STREAM -> prints the HTTP status
    curl -s -o "$work/completion.out" -w '%{http_code}' -H "Authorization: Bearer $1" \
        -H 'Content-Type: application/json' "$base/v1/completions" \
        -d "{\"path\":\"src/main.rs\",\"language\":\"rust\",\"prefix\":\"fn main() {\",\"suffix\":\"}\",\"stream\":$2}"
}

exercise_server() {
    # A user of the fast-limited tier and a key, with the real command line (while the
    # server runs: both share the WAL-mode database).
    TANDEM_CONFIG="$work/config.toml" "$bin" users create --database-url "sqlite://$db" \
        --email check@example.com --tier check
    key=$(TANDEM_CONFIG="$work/config.toml" "$bin" keys create --database-url "sqlite://$db" \
        --email check@example.com --name check | tail -n 1)
    [ "$(completion "$key" false)" = 200 ] || { cat "$work/completion.out"; return 1; }
    [ "$(completion "$key" true)" = 200 ] || { cat "$work/completion.out"; return 1; }
    grep -q '^event: done' "$work/completion.out" || { cat "$work/completion.out"; return 1; }
    local status
    status=$(completion "$key" false)
    [ "$status" = 429 ] || { echo "third request in a minute: $status, want 429"; return 1; }
    curl -s -o /dev/null "$base/no-such-route"
    # Usage records are written in the background: let the writer commit.
    sleep 1.5
    curl -fsS -H "Authorization: Bearer $TANDEM_METRICS_TOKEN" "$base/metrics" >"$work/metrics.txt"
    echo "$key" >"$work/key"
}
check "requests: answered, streamed, rate-limited (429)" exercise_server

check "alerts and dashboard use only served metrics and labels" \
    "$py" deploy/tests/check_metrics.py "$work/metrics.txt" \
    deploy/prometheus/alerts.yml deploy/grafana/dashboards/tandem-cloud.json

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

check_nginx() {
    # nginx/tandem.conf as it is, but for the certificate paths (a throwaway self-signed
    # one), the listen ports (free loopback ports) and the upstream (the server above);
    # in a throwaway prefix, so nothing of the machine's nginx is touched.
    local dir="$work/nginx" http_port https_port
    mkdir -p "$dir/logs" "$dir/tls"
    http_port=$(free_port)
    https_port=$(free_port)
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=tandem.example.com" \
        -keyout "$dir/tls/privkey.pem" -out "$dir/tls/fullchain.pem" 2>/dev/null
    sed -e "s#/etc/letsencrypt/live/tandem.example.com/#$dir/tls/#" \
        -e "s#/var/log/nginx/#$dir/logs/#" \
        -e "s#/var/www/letsencrypt#$dir/www#" \
        -e "s#listen 80;#listen 127.0.0.1:$http_port;#" \
        -e "s#listen 443 ssl http2;#listen 127.0.0.1:$https_port ssl http2;#" \
        -e "/listen \[::\]/d" \
        -e "s#server 127.0.0.1:8787;#server 127.0.0.1:$port;#" \
        deploy/nginx/tandem.conf >"$dir/tandem.conf"
    local nginx_conf="$dir/nginx.conf"
    cat >"$nginx_conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log $dir/logs/access.log;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $dir/tandem.conf;
}
EOF
    nginx -t -p "$dir" -c "$nginx_conf"
    nginx -p "$dir" -c "$nginx_conf"
    sleep 0.3
    local resolve=(--resolve "tandem.example.com:$https_port:127.0.0.1" --resolve "tandem.example.com:$http_port:127.0.0.1")
    local https="https://tandem.example.com:$https_port"
    # HTTP redirects to HTTPS.
    curl -sS -o /dev/null -w '%{http_code} %{redirect_url}\n' "${resolve[@]}" \
        "http://tandem.example.com:$http_port/health" >"$dir/redirect"
    grep -q '^301 https://tandem.example.com/health' "$dir/redirect" || { cat "$dir/redirect"; return 1; }
    # HTTPS (TLS 1.3) reaches the server, with HSTS, and the request id comes back.
    curl -sS -k --tlsv1.3 -D "$dir/headers" -o "$dir/health" "${resolve[@]}" \
        -H 'X-Request-Id: nginx-check-1' "$https/health"
    grep -q '"status":"ok"' "$dir/health" || { cat "$dir/health"; return 1; }
    grep -qi '^strict-transport-security: max-age=63072000' "$dir/headers" || { cat "$dir/headers"; return 1; }
    grep -qi '^x-request-id: nginx-check-1' "$dir/headers" || { cat "$dir/headers"; return 1; }
    # TLS 1.2 is refused (modern profile).
    if curl -sS -k --tls-max 1.2 -o /dev/null "${resolve[@]}" "$https/health" 2>/dev/null; then
        echo "TLS 1.2 was accepted"
        return 1
    fi
    # /metrics is not public.
    [ "$(curl -s -k -o /dev/null -w '%{http_code}' "${resolve[@]}" "$https/metrics")" = 404 ]
    # A streamed completion passes through, every event intact, unbuffered.
    local key
    key=$(cat "$work/key.enterprise")
    curl -sS -k -N -D "$dir/sse.headers" -o "$dir/sse" "${resolve[@]}" \
        -H "Authorization: Bearer $key" -H 'Content-Type: application/json' "$https/v1/completions" \
        -d '{"path":"a.rs","language":"rust","prefix":"fn main() {","suffix":"}","stream":true}'
    grep -qi '^content-type: text/event-stream' "$dir/sse.headers" || { cat "$dir/sse.headers"; return 1; }
    grep -q '^event: done' "$dir/sse" || { cat "$dir/sse"; return 1; }
    # X-Forwarded-For/-Proto reach the server: nginx's access log shows the request id.
    grep -q 'rid=nginx-check-1' "$dir/logs/tandem.access.log" || { cat "$dir/logs/tandem.access.log"; return 1; }
    # Bodies over 4 MiB stop at nginx with 413.
    head -c $((4 * 1024 * 1024 + 1024)) /dev/zero >"$dir/big"
    [ "$(curl -s -k -o /dev/null -w '%{http_code}' "${resolve[@]}" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' --data-binary @"$dir/big" "$https/v1/completions")" = 413 ]
}
enterprise_key() {
    # The key serve printed for dev@localhost on first start (tier enterprise).
    grep -o 'tdm_[A-Za-z0-9]*' "$work/serve.out" | head -n 1 >"$work/key.enterprise"
    [ -s "$work/key.enterprise" ]
}
check "the first-start key of serve" enterprise_key
check "nginx/tandem.conf: nginx -t, redirect, TLS 1.3, HSTS, SSE, 413" check_nginx

check_sqlite_backup() {
    # Back up while the server runs (WAL mode), restore into a new path, and find the
    # user there with the real command line.
    [ "$(sqlite3 "$db" 'PRAGMA journal_mode;')" = wal ] || { echo "the server's database is not in WAL mode"; return 1; }
    deploy/backup/backup-sqlite.sh "$db" "$work/backup/tandem.sqlite"
    deploy/backup/restore-sqlite.sh "$work/backup/tandem.sqlite" "$work/restored/tandem.sqlite"
    [ "$(sqlite3 "$work/restored/tandem.sqlite" 'PRAGMA integrity_check;')" = ok ]
    "$bin" migrate --dry-run --database-url "sqlite://$work/restored/tandem.sqlite" | grep -qx 'no pending migrations'
    TANDEM_CONFIG="$work/config.toml" "$bin" keys list --database-url "sqlite://$work/restored/tandem.sqlite" \
        --email check@example.com | grep -q check
    # Restoring over an existing database keeps the old one aside.
    deploy/backup/restore-sqlite.sh "$work/backup/tandem.sqlite" "$work/restored/tandem.sqlite"
    compgen -G "$work/restored/tandem.sqlite.before-restore-*" >/dev/null
    # A damaged backup is refused.
    printf 'not a database' >"$work/backup/broken.sqlite"
    if deploy/backup/restore-sqlite.sh "$work/backup/broken.sqlite" "$work/restored/other.sqlite" 2>/dev/null; then
        echo "a broken backup was restored"
        return 1
    fi
}
check "SQLite backup (server running) and restore" check_sqlite_backup

stop_server

# --- PostgreSQL backup and restore ---------------------------------------------------------

check_postgres_backup() {
    local suffix source target
    suffix="$(date +%s)_$$_$RANDOM"
    source="tandem_check_src_$suffix"
    target="tandem_check_dst_$suffix"
    printf '%s\n' "$source" "$target" >>"$work/pg-databases"
    psql --no-psqlrc -q -v ON_ERROR_STOP=1 "$pg_url" -c "CREATE DATABASE \"$source\"" -c "CREATE DATABASE \"$target\""
    local src_url="${pg_url%/*}/$source" dst_url="${pg_url%/*}/$target"
    psql --no-psqlrc -q -v ON_ERROR_STOP=1 "$src_url" <<'EOF'
CREATE TABLE users (id uuid PRIMARY KEY, email text UNIQUE NOT NULL, tier text NOT NULL);
CREATE TABLE usage (id bigserial PRIMARY KEY, user_id uuid REFERENCES users (id), tokens integer NOT NULL);
INSERT INTO users VALUES ('00000000-0000-4000-8000-000000000001', 'check@example.com', 'pro');
INSERT INTO usage (user_id, tokens) SELECT '00000000-0000-4000-8000-000000000001', n FROM generate_series(1, 1000) AS n;
EOF
    deploy/backup/backup-postgres.sh "$src_url" "$work/backup/tandem.dump"
    deploy/backup/restore-postgres.sh "$work/backup/tandem.dump" "$dst_url"
    local got
    got=$(psql --no-psqlrc -At "$dst_url" -c "SELECT u.email || ' ' || u.tier || ' ' || sum(g.tokens) FROM users u JOIN usage g ON g.user_id = u.id GROUP BY u.email, u.tier")
    [ "$got" = "check@example.com pro 500500" ] || { echo "restored: $got"; return 1; }
    # The sequence came along: the next id follows the restored rows.
    got=$(psql --no-psqlrc -qAt "$dst_url" -c "INSERT INTO usage (user_id, tokens) VALUES ('00000000-0000-4000-8000-000000000001', 1) RETURNING id")
    [ "$got" = 1001 ] || { echo "next usage id: $got"; return 1; }
    # Restoring into a database that has tables is refused.
    if deploy/backup/restore-postgres.sh "$work/backup/tandem.dump" "$dst_url" 2>/dev/null; then
        echo "restored over a non-empty database"
        return 1
    fi
}
if psql --no-psqlrc -q "$pg_url" -c 'SELECT 1' >/dev/null 2>&1; then
    check "PostgreSQL backup (pg_dump -Fc) and restore" check_postgres_backup
elif [ "${CI:-}" = true ]; then
    check "PostgreSQL reachable at TANDEM_TEST_POSTGRES_URL" false
else
    echo "skipped: PostgreSQL backup and restore (no server at $pg_url)" >&2
fi

# --- supply chain ------------------------------------------------------------------------

log "cargo deny"
check_deny() {
    # The RustSec advisory database comes from its git repository. Where that host is out
    # of reach (this project's own machines reach only package registries), advisories
    # are skipped with a note and the rest is checked; elsewhere (GitHub Actions) all.
    if timeout 120 cargo deny --locked fetch db >"$work/deny-fetch.log" 2>&1; then
        cargo deny --locked check
    else
        grep -v "^[[:space:]]*$" "$work/deny-fetch.log" | tail -n 1 >"$work/deny-skipped" || true
        cargo deny --locked check licenses bans sources
    fi
}
check "cargo deny check (licenses, bans, sources, advisories)" check_deny
if [ -f "$work/deny-skipped" ]; then
    echo "note: the RustSec advisory database could not be fetched, advisories were not checked:" >&2
    sed 's/^/      /' "$work/deny-skipped" >&2
fi

echo
if [ "$failed" -gt 0 ]; then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
