# shellcheck shell=bash
#
# A real draft-publisher for shell test suites. Source it, then:
#
#   start_test_server [serve options...]
#
# builds `draft-publisher` (dev profile, the build the Rust tests cached),
# starts `draft-publisher serve` on a free port of 127.0.0.1 against a fresh
# database of its own on the server of DATABASE_URL (the service creates it),
# waits until gRPC health reports SERVING, and exports:
#
#   TEST_SERVER_ADDR          127.0.0.1:PORT (what grpcurl takes)
#   TEST_SERVER_URL           http://127.0.0.1:PORT (what gRPC clients take)
#   TEST_SERVER_DATABASE_URL  the server's database
#   TEST_SERVER_LOG           its log file (JSON lines)
#
# It installs an EXIT trap (and turns SIGINT/SIGTERM into an exit so the trap
# runs) that calls `stop_test_server`: the server gets SIGTERM and must exit
# with status 0 within TEST_SERVER_STOP_TIMEOUT seconds (default 20), then its
# database is dropped. A server that fails to start or to stop cleanly prints
# its log and makes the suite fail. A suite that needs an EXIT trap of its own
# calls `stop_test_server` from it (it returns 1 when the server did not stop
# cleanly).
#
# DATABASE_URL defaults to what scripts/postgres.sh finds (as scripts/test.sh
# does), so a suite that sources this file can also be run on its own.
# TEST_SERVER_START_TIMEOUT (seconds, default 60) bounds the wait for SERVING.
# Needs cargo and psql (health is asked with `draft-publisher health-check`);
# scripts/provision.sh installs them.

TEST_SERVER_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)"
TEST_SERVER_PID=""
TEST_SERVER_BIN=""
_TEST_SERVER_ADDR_FILE=""
TEST_SERVER_ADMIN_URL=""
TEST_SERVER_DATABASE=""
_TEST_SERVER_LOG_SHOWN=0

_test_server_log() {
    printf 'test-server: %s\n' "$*" >&2
}

# $1 with its database name replaced by $2 (query parameters kept).
_test_server_with_database() {
    local url="$1" name="$2" query="" server
    case "$url" in
        *://*) ;;
        *)
            _test_server_log "DATABASE_URL must be a URL (postgres://...), got another form"
            return 1
            ;;
    esac
    case "$url" in
        *\?*)
            query="?${url#*\?}"
            url="${url%%\?*}"
            ;;
    esac
    server="${url#*://}"
    server="${server%%/*}"
    printf '%s://%s/%s%s' "${url%%://*}" "$server" "$name" "$query"
}

_test_server_show_log() {
    if [ -n "${TEST_SERVER_LOG:-}" ] && [ -s "$TEST_SERVER_LOG" ] && [ "$_TEST_SERVER_LOG_SHOWN" != 1 ]; then
        _TEST_SERVER_LOG_SHOWN=1
        _test_server_log "server log ($TEST_SERVER_LOG), last lines:"
        tail -n 30 "$TEST_SERVER_LOG" >&2 || true
    fi
}

# The server's own health check: exits 0 only when it answers SERVING.
_test_server_is_serving() {
    "$TEST_SERVER_BIN" health-check --addr "$TEST_SERVER_ADDR" --timeout 2s >/dev/null 2>&1
}

start_test_server() {
    local deadline
    if [ -n "$TEST_SERVER_PID" ]; then
        _test_server_log "a test server is already running (pid $TEST_SERVER_PID)"
        return 1
    fi
    if [ -z "${DATABASE_URL:-}" ]; then
        # shellcheck source=scripts/postgres.sh
        . "$TEST_SERVER_ROOT/scripts/postgres.sh"
        ensure_postgres || return 1
    fi
    # shellcheck source=scripts/cargo.sh
    . "$TEST_SERVER_ROOT/scripts/cargo.sh"
    ensure_cargo || return 1
    command -v psql >/dev/null 2>&1 || {
        _test_server_log "psql is needed to drop the test database"
        return 1
    }

    _test_server_log "cargo build --bin draft-publisher"
    (cd "$TEST_SERVER_ROOT" && cargo build --quiet --bin draft-publisher) || return 1
    TEST_SERVER_BIN="${CARGO_TARGET_DIR:-$TEST_SERVER_ROOT/target}/debug/draft-publisher"

    TEST_SERVER_DATABASE="draft_publisher_shell_$(date +%s)_$$_${RANDOM}"
    TEST_SERVER_DATABASE_URL="$(_test_server_with_database "$DATABASE_URL" "$TEST_SERVER_DATABASE")" || return 1
    TEST_SERVER_ADMIN_URL="$(_test_server_with_database "$DATABASE_URL" postgres)" || return 1
    TEST_SERVER_LOG="$(mktemp "${TMPDIR:-/tmp}/draft-publisher-test-server.XXXXXX")" || return 1
    _TEST_SERVER_ADDR_FILE="$TEST_SERVER_LOG.addr"
    export TEST_SERVER_DATABASE_URL TEST_SERVER_LOG

    trap _test_server_on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # Port 0: the kernel picks a free port, which the server writes to a file.
    RUST_LOG=info "$TEST_SERVER_BIN" --database-url "$TEST_SERVER_DATABASE_URL" --log-format json \
        serve --listen-addr 127.0.0.1:0 --addr-file "$_TEST_SERVER_ADDR_FILE" "$@" \
        </dev/null >>"$TEST_SERVER_LOG" 2>&1 &
    TEST_SERVER_PID=$!

    deadline=$((SECONDS + ${TEST_SERVER_START_TIMEOUT:-60}))
    TEST_SERVER_ADDR=""
    while [ -z "$TEST_SERVER_ADDR" ]; do
        if [ -s "$_TEST_SERVER_ADDR_FILE" ]; then
            TEST_SERVER_ADDR="$(head -n 1 "$_TEST_SERVER_ADDR_FILE")"
        fi
        if ! kill -0 "$TEST_SERVER_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            _test_server_log "the server did not start listening"
            return 1
        fi
        [ -n "$TEST_SERVER_ADDR" ] || sleep 0.1
    done
    TEST_SERVER_URL="http://$TEST_SERVER_ADDR"
    export TEST_SERVER_ADDR TEST_SERVER_URL

    until _test_server_is_serving; do
        if ! kill -0 "$TEST_SERVER_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            _test_server_log "health did not report SERVING on $TEST_SERVER_ADDR"
            return 1
        fi
        sleep 0.1
    done
    _test_server_log "draft-publisher is SERVING on $TEST_SERVER_ADDR (database $TEST_SERVER_DATABASE)"
}

# SIGTERM, a bounded wait for a clean exit, then the database is dropped.
# Returns 1 when the server did not exit with status 0.
stop_test_server() {
    local server_status=0 deadline
    if [ -n "$TEST_SERVER_PID" ]; then
        kill -TERM "$TEST_SERVER_PID" 2>/dev/null || true
        deadline=$((SECONDS + ${TEST_SERVER_STOP_TIMEOUT:-20}))
        while kill -0 "$TEST_SERVER_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if kill -0 "$TEST_SERVER_PID" 2>/dev/null; then
            _test_server_log "the server did not stop within ${TEST_SERVER_STOP_TIMEOUT:-20} s of SIGTERM; killing it"
            kill -KILL "$TEST_SERVER_PID" 2>/dev/null || true
        fi
        wait "$TEST_SERVER_PID" 2>/dev/null || server_status=$?
        TEST_SERVER_PID=""
        if [ "$server_status" -ne 0 ]; then
            _test_server_log "the server exited with status $server_status after SIGTERM"
            _test_server_show_log
        fi
    fi
    if [ -n "$TEST_SERVER_DATABASE" ]; then
        if ! PGOPTIONS='-c client_min_messages=warning' psql -X -q -w -d "$TEST_SERVER_ADMIN_URL" -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS \"$TEST_SERVER_DATABASE\" WITH (FORCE)" </dev/null >/dev/null; then
            _test_server_log "could not drop database $TEST_SERVER_DATABASE"
        fi
        TEST_SERVER_DATABASE=""
    fi
    [ "$server_status" -eq 0 ]
}

# The EXIT trap: keeps the suite's status, or fails a passing suite whose
# server did not stop cleanly. The log is kept when anything failed.
_test_server_on_exit() {
    local status=$?
    if ! stop_test_server && [ "$status" -eq 0 ]; then
        status=1
    fi
    if [ "$status" -ne 0 ]; then
        _test_server_show_log
    fi
    if [ "$status" -eq 0 ] && [ -n "${TEST_SERVER_LOG:-}" ]; then
        rm -f "$TEST_SERVER_LOG"
    fi
    rm -f "${_TEST_SERVER_ADDR_FILE:-}"
    exit "$status"
}
