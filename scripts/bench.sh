#!/usr/bin/env bash
# Benchmark PublishDraft against PostgreSQL's own ceiling: the service (release
# build) driven by examples/loadgen, side by side with pgbench running the same
# SQL directly (scripts/bench/*.sql), on the same PostgreSQL, at concurrency 1,
# 8, 32 and 128, and the contended scenario at 64 callers. Prints a markdown
# table with the ratios service/pgbench and the server's peak RSS. See
# BENCHMARKS.md.
#
#   scripts/bench.sh            # about 2 minutes on 2 cores, once built
#   scripts/bench.sh --json     # also every measurement as JSON lines
#
# Knobs: BENCH_PORT (default 50151), BENCH_LEVELS (default "1 8 32 128"),
# BENCH_SERVER_ARGS (extra `serve` flags), BENCH_SERVER_BIN (another server
# binary, e.g. an older build to compare with), BENCH_PGBENCH_MAX_CLIENTS
# (default 64: pgbench at higher levels runs with that many). Databases draft_publisher_bench and
# draft_publisher_bench_sql on the chosen server are dropped and recreated.
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

json=false
case "${1:-}" in
    "") ;;
    --json) json=true ;;
    *)
        echo "usage: $0 [--json]" >&2
        exit 2
        ;;
esac

# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh
# shellcheck source=scripts/cargo.sh
. scripts/cargo.sh
ensure_postgres
ensure_cargo
for tool in pgbench psql; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found (Debian: apt-get install postgresql-client)" >&2
        exit 1
    }
done

port="${BENCH_PORT:-50151}"
read -r -a levels <<<"${BENCH_LEVELS:-1 8 32 128}"
read -r -a server_args <<<"${BENCH_SERVER_ARGS:-}"
contenders=64
# pgbench needs a connection per client; PostgreSQL's max_connections (100 by
# default, shared with everything else on the server) caps it below 128.
pgbench_max_clients="${BENCH_PGBENCH_MAX_CLIENTS:-64}"
contended_drafts=100
# Published drafts the pgbench fast path reads at random.
fastpath_drafts=10000
out=target/bench
mkdir -p "$out"
rm -f "$out"/*.log "$out"/pgbench_log.* "$out/results.jsonl"

# Calls per run at each concurrency: a few seconds each on 2 cores.
requests_for() {
    case "$1" in
        1) echo 1500 ;;
        8) echo 4000 ;;
        *) echo 8000 ;;
    esac
}

echo "==> cargo build --release (server and loadgen)" >&2
cargo build --release --quiet --bin draft-publisher --example loadgen
server_bin="${BENCH_SERVER_BIN:-target/release/draft-publisher}"
loadgen_bin=target/release/examples/loadgen

# $1 with its database name replaced by $2.
with_database() {
    local url="${1%%\?*}" query=""
    [ "$url" = "$1" ] || query="?${1#*\?}"
    local scheme="${url%%://*}" rest="${url#*://}"
    printf '%s://%s/%s%s' "$scheme" "${rest%%/*}" "$2" "$query"
}
service_url="$(with_database "$DATABASE_URL" draft_publisher_bench)"
sql_url="$(with_database "$DATABASE_URL" draft_publisher_bench_sql)"

# --- databases -----------------------------------------------------------------
for url in "$service_url" "$sql_url"; do
    psql -X -q -d "$(with_database "$DATABASE_URL" postgres)" -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS \"${url##*/}\" WITH (FORCE)"
    "$server_bin" --database-url "$url" migrate 2>>"$out/server.log"
done
seed() { # first last publish
    psql -X -q -d "$sql_url" -v ON_ERROR_STOP=1 -v first="$1" -v last="$2" -v publish="$3" \
        -f scripts/bench/seed.sql
}
seed 1 "$fastpath_drafts" true
next_draft="$fastpath_drafts"

# --- the service -----------------------------------------------------------------
server_pid=""
start_server() {
    RUST_LOG="${RUST_LOG:-info}" "$server_bin" --database-url "$service_url" serve \
        --listen-addr "127.0.0.1:$port" ${server_args[@]+"${server_args[@]}"} 2>>"$out/server.log" &
    server_pid=$!
    local attempt
    for attempt in $(seq 1 100); do
        if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        : "attempt $attempt"
        sleep 0.1
    done
    echo "error: the server did not listen on 127.0.0.1:$port; see $out/server.log" >&2
    exit 1
}
# Peak RSS of the server so far, in MiB.
peak_rss() {
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$server_pid/status"
}
stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}
trap '[ -z "$server_pid" ] || kill -TERM "$server_pid" 2>/dev/null || true' EXIT

loadgen() { # scenario concurrency requests
    "$loadgen_bin" --addr "http://127.0.0.1:$port" --json --scenario "$1" \
        --concurrency "$2" --requests "$3" --duration 30s | tee -a "$out/results.jsonl"
}

# --- pgbench ---------------------------------------------------------------------
# Runs scripts/bench/$1.sql for concurrency level $2 with $3 clients and $4
# transactions per client; prints a JSON line like the loadgen's (throughput,
# p50/p90/p99/max, failures).
pgbench_run() {
    local script="$1" level="$2" clients="$3" per_client="$4" threads=$(($3 < 2 ? $3 : 2))
    local defines=(-D i=0 -D base="$next_draft" -D per_client="$per_client" -D published="$fastpath_drafts")
    if [ "$script" != fastpath ]; then
        seed $((next_draft + 1)) $((next_draft + clients * per_client)) false
        next_draft=$((next_draft + clients * per_client))
    fi
    rm -f "$out"/pgbench_log.*
    local report
    report="$(cd "$out" && pgbench -n -M prepared -c "$clients" -j "$threads" -t "$per_client" \
        "${defines[@]}" -f "../../scripts/bench/$script.sql" --log --log-prefix=pgbench_log \
        -d "$sql_url" 2>&1)" || {
        echo "$report" >&2
        exit 1
    }
    local tps failed
    tps="$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' <<<"$report")"
    failed="$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' <<<"$report")"
    # Each log line: client, transaction, latency in microseconds, ...
    cat "$out"/pgbench_log.* | awk '{ print $3 }' | sort -n | awk -v tps="$tps" -v failed="${failed:-0}" \
        -v script="$script" -v level="$level" -v clients="$clients" '
        { v[NR] = $1 }
        function q(p) { i = int(p * NR + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
        END {
            printf "{\"pgbench\":\"%s\",\"concurrency\":%d,\"clients\":%d,\"calls\":%d,\"requests_per_s\":%s,", script, level, clients, NR, tps
            printf "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"failed\":%d}\n", q(0.5), q(0.9), q(0.99), v[NR] / 1000, failed
        }' | tee -a "$out/results.jsonl"
}

# --- the runs --------------------------------------------------------------------
declare -A rss
for c in "${levels[@]}"; do
    n="$(requests_for "$c")"
    echo "==> concurrency $c: service ($n calls per scenario), then pgbench" >&2
    start_server
    for scenario in fresh repeat mixed; do
        loadgen "$scenario" "$c" "$n" >/dev/null
    done
    rss[$c]="$(peak_rss)"
    stop_server
    clients=$((c < pgbench_max_clients ? c : pgbench_max_clients))
    for script in naive single fastpath; do
        pgbench_run "$script" "$c" "$clients" $((n / clients)) >/dev/null
    done
done
echo "==> contended: $contenders callers publish each draft together" >&2
start_server
loadgen contended "$contenders" $((contenders * contended_drafts)) >/dev/null
rss[contended]="$(peak_rss)"
stop_server

# --- the table -------------------------------------------------------------------
field() { # json-line key
    sed -nE "s/.*\"$2\":([-0-9.e]+).*/\1/p" <<<"$1"
}
errors() {
    sed -nE 's/.*"errors":\{([^}]*)\}.*/\1/p' <<<"$1" | tr -d '"' | sed 's/^$/-/'
}
record() { # kind name concurrency
    grep -F "\"$1\":\"$2\"" "$out/results.jsonl" | grep -F "\"concurrency\":$3," | tail -n 1
}
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}
rate() {
    printf '%.0f' "$(field "$1" requests_per_s)"
}

echo
echo "| conc | fresh req/s | p99 ms | pgbench (a) naive | ratio | pgbench (b) one statement | ratio | repeat req/s | p99 ms | pgbench (c) fast path | ratio | mixed req/s | p99 ms | errors | peak RSS MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
for c in "${levels[@]}"; do
    fresh="$(record scenario fresh "$c")" repeat="$(record scenario repeat "$c")" mixed="$(record scenario mixed "$c")"
    naive="$(record pgbench naive "$c")" single="$(record pgbench single "$c")" fast="$(record pgbench fastpath "$c")"
    errs="fresh: $(errors "$fresh"); repeat: $(errors "$repeat"); mixed: $(errors "$mixed")"
    echo "| $c | $(rate "$fresh") | $(field "$fresh" p99_ms) | $(rate "$naive") | $(ratio "$(field "$fresh" requests_per_s)" "$(field "$naive" requests_per_s)") | $(rate "$single") | $(ratio "$(field "$fresh" requests_per_s)" "$(field "$single" requests_per_s)") | $(rate "$repeat") | $(field "$repeat" p99_ms) | $(rate "$fast") | $(ratio "$(field "$repeat" requests_per_s)" "$(field "$fast" requests_per_s)") | $(rate "$mixed") | $(field "$mixed" p99_ms) | $errs | ${rss[$c]} |"
done
contended="$(record scenario contended "$contenders")"
echo
echo "| contended | callers | calls | req/s | p50 ms | p99 ms | max ms | errors | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|---|---:|"
echo "| $contended_drafts drafts | $contenders | $(field "$contended" calls) | $(rate "$contended") | $(field "$contended" p50_ms) | $(field "$contended" p99_ms) | $(field "$contended" max_ms) | $(errors "$contended") | ${rss[contended]} |"
echo
echo "pgbench latencies (ms, p50 / p99):"
for c in "${levels[@]}"; do
    line="  c=$c ($(field "$(record pgbench naive "$c")" clients) clients)"
    for script in naive single fastpath; do
        r="$(record pgbench "$script" "$c")"
        line+="  $script $(field "$r" p50_ms) / $(field "$r" p99_ms) (failed $(field "$r" failed))"
    done
    echo "$line"
done
if "$json"; then
    echo
    cat "$out/results.jsonl"
fi
