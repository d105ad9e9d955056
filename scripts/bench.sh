#!/usr/bin/env bash
# Benchmark PublishDraft against PostgreSQL's own ceiling and against the gRPC
# floor: the service (release build) driven by examples/loadgen, side by side
# with the same service answering from memory (examples/floor.rs, driven by
# the same load generator) and with pgbench running the same SQL directly
# (scripts/bench/*.sql), on the same PostgreSQL. Every run is
# time-boxed (a warm-up, then BENCH_DURATION measured); each round runs the
# service and then its baselines back to back, and the tables report the
# median of the rounds with their range. The logic (summaries, medians,
# ratios, tables) is in the load generator's subcommands; this script only
# starts things in order. See BENCHMARKS.md.
#
#   scripts/bench.sh              # every part, about 25 minutes on 2 cores
#   scripts/bench.sh throughput   # one part: throughput, instructions, feed
#   scripts/bench.sh --json ...   # also every measurement as JSON lines
#   BENCH_WARMUP=0.5s BENCH_DURATION=2s BENCH_ROUNDS=1 BENCH_LEVELS=8 \
#       scripts/bench.sh          # a smoke run of the tools, a few minutes
#
# The instructions part runs the service and the floor under valgrind's
# callgrind and counts server instructions per call (BENCH_CALLGRIND_CALLS,
# default "500 2500": the two runs whose difference is taken); the counts do
# not depend on the machine's load. BENCH_BEFORE_BIN (a server binary built
# from an earlier commit) is counted too, labelled "before", so a change is
# judged against its predecessor in the same run (it runs with
# --skip-migrations on the database the current build migrated).
#
# The feed part (issue 9's numbers) needs NATS with JetStream at
# BENCH_NATS_URL (default nats://127.0.0.1:4222): fresh publishes at
# BENCH_FEED_CONCURRENCY callers (default 32) with the relay on and off in
# alternating rounds, then the delivery lag to Watch and to JetStream at half
# the median relay-off rate, then BENCH_WATCHERS (default 1000) idle Watch
# streams. The server's metrics listen on 127.0.0.1:BENCH_METRICS_PORT
# (default 50153).
#
# Knobs: BENCH_WARMUP (default 2s), BENCH_DURATION (default 10s),
# BENCH_ROUNDS (default 3), BENCH_LEVELS (default "1 8 32 128"), BENCH_PORT
# (default 50151), BENCH_FLOOR_PORT (default 50152), BENCH_SERVER_ARGS (extra `serve` flags), BENCH_SERVER_BIN
# (another server binary, e.g. an older build to compare with),
# BENCH_PGBENCH_MAX_CLIENTS (default 64: pgbench at higher levels runs with
# that many), BENCH_RATE_CAP (default 6000, and 1500 per caller below that:
# the most fresh publishes per second a service run prepares drafts for),
# BENCH_PGBENCH_RATE_CAP (default 12000, and 3000 per client below that: the
# same for pgbench's publishing scripts); a run that runs out of drafts says so in the errors column.
# Databases draft_publisher_bench and draft_publisher_bench_sql on the chosen
# server are dropped and recreated.
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

json=false
parts=()
for arg in "$@"; do
    case "$arg" in
        --json) json=true ;;
        throughput | instructions | feed) parts+=("$arg") ;;
        *)
            echo "usage: $0 [--json] [throughput] [instructions] [feed]" >&2
            exit 2
            ;;
    esac
done
[ "${#parts[@]}" -gt 0 ] || parts=(throughput instructions feed)

# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh
# shellcheck source=scripts/cargo.sh
. scripts/cargo.sh
ensure_postgres
ensure_cargo
for tool in pgbench psql valgrind callgrind_control; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool not found (Debian: apt-get install postgresql-client valgrind)" >&2
        exit 1
    }
done

port="${BENCH_PORT:-50151}"
floor_port="${BENCH_FLOOR_PORT:-50152}"
warmup="${BENCH_WARMUP:-2s}"
duration="${BENCH_DURATION:-10s}"
rounds="${BENCH_ROUNDS:-3}"
rate_cap="${BENCH_RATE_CAP:-6000}"
pgbench_rate_cap="${BENCH_PGBENCH_RATE_CAP:-12000}"
nats_url="${BENCH_NATS_URL:-nats://127.0.0.1:4222}"
metrics_addr="127.0.0.1:${BENCH_METRICS_PORT:-50153}"
feed_concurrency="${BENCH_FEED_CONCURRENCY:-32}"
watchers="${BENCH_WATCHERS:-1000}"
read -r -a callgrind_calls <<<"${BENCH_CALLGRIND_CALLS:-500 2500}"
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

# Whole seconds (rounded up) of a humantime duration like 2s, 500ms or 1m.
seconds() {
    case "$1" in
        *ms) echo $((( ${1%ms} + 999) / 1000)) ;;
        *m) echo $((${1%m} * 60)) ;;
        *s) awk -v s="${1%s}" 'BEGIN { printf "%d", (s == int(s)) ? s : int(s) + 1 }' ;;
        *) echo "$1" ;;
    esac
}
warmup_s="$(seconds "$warmup")" duration_s="$(seconds "$duration")"
# Drafts a fresh-publish run at $1 callers prepares: enough for the rate cap
# over its whole time. The other scenarios need no draft per call: only the
# clock ends them.
budget() {
    local cap=$((1500 * $1 < rate_cap ? 1500 * $1 : rate_cap))
    echo $((cap * (warmup_s + duration_s)))
}
unbounded=1000000000

echo "==> cargo build --release (server, floor and loadgen)" >&2
cargo build --release --quiet --bin draft-publisher --example loadgen --example floor
server_bin="${BENCH_SERVER_BIN:-target/release/draft-publisher}"
loadgen_bin=target/release/examples/loadgen
floor_bin=target/release/examples/floor

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
fresh_database() { # url
    psql -X -q -d "$(with_database "$DATABASE_URL" postgres)" -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS \"${1##*/}\" WITH (FORCE)"
    "$server_bin" --database-url "$1" migrate 2>>"$out/server.log"
}
fresh_database "$service_url"
fresh_database "$sql_url"
seed() { # first last publish
    psql -X -q -d "$sql_url" -v ON_ERROR_STOP=1 -v first="$1" -v last="$2" -v publish="$3" \
        -f scripts/bench/seed.sql
}
seed 1 "$fastpath_drafts" true
next_draft="$fastpath_drafts"

# --- servers -------------------------------------------------------------------
server_pid=""
under=()
bin=
wait_listening() { # port
    local attempt
    for attempt in $(seq 1 600); do
        if (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        : "attempt $attempt"
        sleep 0.1
    done
    echo "error: nothing listens on 127.0.0.1:$1; see $out/server.log" >&2
    exit 1
}
# With `under` set (e.g. valgrind and its flags) the server runs under that tool.
start_server() { # extra serve flags...
    RUST_LOG="${RUST_LOG:-info}" ${under[@]+"${under[@]}"} "${bin:-$server_bin}" --database-url "$service_url" serve \
        --listen-addr "127.0.0.1:$port" ${server_args[@]+"${server_args[@]}"} "$@" 2>>"$out/server.log" &
    server_pid=$!
    wait_listening "$port"
}
start_floor() {
    ${under[@]+"${under[@]}"} "$floor_bin" --listen-addr "127.0.0.1:$floor_port" 2>>"$out/floor.log" &
    server_pid=$!
    wait_listening "$floor_port"
}
stop_server() {
    kill -TERM "$server_pid"
    wait "$server_pid" || true
    server_pid=""
}
trap '[ -z "$server_pid" ] || kill -TERM "$server_pid" 2>/dev/null || true' EXIT

loadgen() { # label round scenario concurrency requests
    local at="$port"
    [ "$1" != floor ] || at="$floor_port"
    "$loadgen_bin" --addr "http://127.0.0.1:$at" --json --label "$1" --round "$2" --scenario "$3" \
        --concurrency "$4" --requests "$5" --warmup "$warmup" --duration "$duration" \
        --server-pid "$server_pid" >>"$out/results.jsonl"
}

# --- pgbench ---------------------------------------------------------------------
# Runs scripts/bench/$1.sql for concurrency level $2 with $3 clients in round
# $4: a warm-up of its own, then the measured run, each time-boxed, each on
# drafts seeded for it (the fast path reads published ones).
pgbench_run() {
    local script="$1" level="$2" clients="$3" round="$4" threads=$(($3 < 2 ? $3 : 2))
    local cap=$((3000 * clients < pgbench_rate_cap ? 3000 * clients : pgbench_rate_cap))
    local per_client=$((cap * (warmup_s + duration_s) / clients + 1))
    if [ "$script" != fastpath ]; then
        seed $((next_draft + 1)) $((next_draft + clients * per_client)) false
    fi
    local phase time
    for phase in warmup measured; do
        time="$([ "$phase" = warmup ] && echo "$warmup_s" || echo "$duration_s")"
        rm -f "$out"/pgbench_log.*
        (cd "$out" && pgbench -n -M prepared -c "$clients" -j "$threads" -T "$time" \
            -D i=0 -D base="$next_draft" -D per_client="$per_client" -D published="$fastpath_drafts" \
            -f "../../scripts/bench/$script.sql" --log --log-prefix=pgbench_log \
            -d "$sql_url" >pgbench_report.txt 2>&1) || {
            cat "$out/pgbench_report.txt" >&2
            exit 1
        }
        if [ "$script" != fastpath ]; then
            # The next phase takes the drafts after these.
            next_draft=$((next_draft + clients * per_client))
            [ "$phase" = measured ] || seed $((next_draft + 1)) $((next_draft + clients * per_client)) false
        fi
    done
    "$loadgen_bin" pgbench --script "$script" --concurrency "$level" --clients "$clients" \
        --round "$round" --per-client "$per_client" --report "$out/pgbench_report.txt" \
        "$out"/pgbench_log.* >>"$out/results.jsonl"
}

# --- the parts -------------------------------------------------------------------
throughput() {
    for round in $(seq 1 "$rounds"); do
        for c in "${levels[@]}"; do
            echo "==> round $round/$rounds, concurrency $c: service, floor, then pgbench" >&2
            start_server
            loadgen service "$round" fresh "$c" "$(budget "$c")"
            loadgen service "$round" repeat "$c" "$unbounded"
            loadgen service "$round" mixed "$c" "$unbounded"
            stop_server
            # The floor's fresh publish would cost what its repeat costs (a map
            # look-up and the same answer), and needs no drafts prepared.
            start_floor
            loadgen floor "$round" repeat "$c" "$unbounded"
            loadgen floor "$round" mixed "$c" "$unbounded"
            stop_server
            clients=$((c < pgbench_max_clients ? c : pgbench_max_clients))
            for script in naive single fastpath; do
                pgbench_run "$script" "$c" "$clients" "$round"
            done
        done
        echo "==> round $round/$rounds: contended, $contenders callers publish each draft together" >&2
        start_server
        loadgen service "$round" contended "$contenders" $((contenders * contended_drafts))
        stop_server
    done
}

# Server instructions per call, under callgrind: for each scenario two runs of
# one caller, counters zeroed before and dumped after each (callgrind_control),
# so that start-up, migrations and the load generator's preparations cancel.
instructions() {
    local label scenario calls dumps dumped labels=(service floor)
    [ -z "${BENCH_BEFORE_BIN:-}" ] || labels+=(before)
    for label in "${labels[@]}"; do
        echo "==> instructions per call: $label under callgrind" >&2
        rm -f "$out/callgrind.$label".*
        under=(valgrind --tool=callgrind --dump-instr=no "--callgrind-out-file=$out/callgrind.$label.out")
        case "$label" in
            service) start_server ;;
            floor) start_floor ;;
            # Its migrations are a subset of the database's: it must not
            # check them against the newer ones already applied.
            before) bin="$BENCH_BEFORE_BIN" start_server --skip-migrations ;;
        esac
        under=()
        dumped=0
        for scenario in repeat fresh; do
            dumps=()
            for calls in "${callgrind_calls[@]}"; do
                callgrind_control --zero "$server_pid" >/dev/null
                "$loadgen_bin" --addr "http://127.0.0.1:$([ "$label" = floor ] && echo "$floor_port" || echo "$port")" \
                    --json --scenario "$scenario" --concurrency 1 --requests "$calls" --warmup 0s \
                    --duration 1h >>"$out/callgrind.runs.jsonl"
                callgrind_control --dump "$server_pid" >/dev/null
                # callgrind numbers its dumps 1, 2, ...
                dumped=$((dumped + 1))
                dumps+=("$out/callgrind.$label.out.$dumped")
            done
            "$loadgen_bin" callgrind --scenario "$scenario" --label "$label" \
                --calls-a "${callgrind_calls[0]}" --dump-a "${dumps[0]}" \
                --calls-b "${callgrind_calls[1]}" --dump-b "${dumps[1]}" >>"$out/results.jsonl"
        done
        stop_server
    done
}

# The change feed: relay on/off, delivery lag, idle Watch streams. Each
# server starts on an empty database: changes left unsent by earlier parts
# (run without the relay) would otherwise be a backlog the relay sends
# during the measurement.
feed() {
    local round c="$feed_concurrency" relay rate
    local with_relay=(--nats-url "$nats_url" --metrics-addr "$metrics_addr")
    for round in $(seq 1 "$rounds"); do
        echo "==> round $round/$rounds: fresh publish at $c callers, relay on and off" >&2
        # Odd rounds start with the relay on, even rounds with it off.
        for relay in $([ $((round % 2)) -eq 1 ] && echo "on off" || echo "off on"); do
            fresh_database "$service_url"
            if [ "$relay" = on ]; then start_server "${with_relay[@]}"; else start_server; fi
            loadgen "relay-$relay" "$round" fresh "$c" "$(budget "$c")"
            stop_server
        done
    done
    rate="$("$loadgen_bin" median "$out/results.jsonl" --scenario fresh --label relay-off --concurrency "$c")"
    rate=$((rate / 2))
    echo "==> delivery lag at $rate publishes/s (half the relay-off median)" >&2
    fresh_database "$service_url"
    start_server "${with_relay[@]}"
    "$loadgen_bin" lag --addr "http://127.0.0.1:$port" --nats-url "$nats_url" --metrics-addr "$metrics_addr" \
        --rate "$rate" --duration "$duration" >>"$out/results.jsonl"
    stop_server
    echo "==> $watchers idle Watch streams" >&2
    fresh_database "$service_url"
    start_server "${with_relay[@]}"
    "$loadgen_bin" idle-watch --addr "http://127.0.0.1:$port" --server-pid "$server_pid" \
        --metrics-addr "$metrics_addr" --streams "$watchers" --idle "$duration" >>"$out/results.jsonl"
    stop_server
}

for part in "${parts[@]}"; do
    "$part"
done

echo
"$loadgen_bin" report "$out/results.jsonl"
if "$json"; then
    echo
    cat "$out/results.jsonl"
fi
