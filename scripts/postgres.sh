#!/usr/bin/env bash
#
# Source this file (". scripts/postgres.sh") and call `ensure_postgres`.
# It makes sure a PostgreSQL server is reachable and exports DATABASE_URL.
# The service creates its database itself if it is missing; tests derive
# their per-test database names from the same server.
#
# Selection order:
#   a. DATABASE_URL already set          -> used as is (checked with pg_isready).
#   b. a server answers on 127.0.0.1:5432 -> postgres://postgres@127.0.0.1:5432/draft_publisher
#   c. a Debian cluster (pg_lsclusters) is installed but stopped and we are
#      root -> it is started with pg_ctlcluster and used as in b.
#   d. otherwise a private cluster in <repo>/.pg/ is created (initdb, trust
#      auth) and started on 127.0.0.1:55432 (or $PRIVATE_PG_PORT), from the
#      system's PostgreSQL binaries (scripts/provision.sh installs them).
#
# Knobs:
#   DATABASE_URL                  use this server, skip everything else
#   DRAFT_PUBLISHER_PRIVATE_PG=1  skip b and c, always use the private cluster
#   PRIVATE_PG_PORT               port of the private cluster (default 55432)
#
# Executed directly instead of sourced:
#   scripts/postgres.sh           ensure a server and print DATABASE_URL=...
#   scripts/postgres.sh stop      stop the private cluster in .pg/ (if running)
#
# Safe to source into a shell running with `set -euo pipefail`: every
# expected failure is tested explicitly and only the final result is
# reported through the return code. Shell options are not modified.

DRAFT_PUBLISHER_ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
DRAFT_PUBLISHER_DB_NAME="draft_publisher"

_pg_log() {
    printf 'postgres: %s\n' "$*" >&2
}

_pg_is_root() {
    [ "$(id -u)" -eq 0 ]
}

# DATABASE_URL with any password replaced by ***, for log lines.
_pg_redact() {
    printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@]*@#\1:***@#'
}

# pg_isready against host/port; $3 = connect timeout in seconds.
_pg_ready() {
    pg_isready -q -h "$1" -p "$2" -U postgres -t "${3:-3}" >/dev/null 2>&1
}

# Bounded poll until host:port answers. pg_isready's own -t timeout does the
# waiting when the server accepts TCP but is still starting up.
_pg_wait_ready() {
    local host="$1" port="$2" attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        if _pg_ready "$host" "$port" 3; then
            return 0
        fi
        : "attempt $attempt failed"
    done
    return 1
}

# Can we log in as the `postgres` role without a password? When psql is not
# installed we cannot tell, and assume yes.
_pg_can_login() {
    local host="$1" port="$2"
    if ! command -v psql >/dev/null 2>&1; then
        return 0
    fi
    PGCONNECT_TIMEOUT=5 psql -X -w -q -A -t -h "$host" -p "$port" -U postgres \
        -d postgres -c 'select 1' </dev/null >/dev/null 2>&1
}

# --- a. DATABASE_URL given ---------------------------------------------------
_pg_use_given_url() {
    local shown
    shown="$(_pg_redact "$DATABASE_URL")"
    if command -v pg_isready >/dev/null 2>&1; then
        if ! pg_isready -q -d "$DATABASE_URL" -t 5 >/dev/null 2>&1; then
            _pg_log "DATABASE_URL is set ($shown) but no PostgreSQL server answers there."
            _pg_log "Start that server, or unset DATABASE_URL to let this script find or start one."
            return 1
        fi
    else
        _pg_log "pg_isready not found; not checking the server behind DATABASE_URL"
    fi
    export DATABASE_URL
    _pg_log "using PostgreSQL from DATABASE_URL ($shown)"
}

# --- b. server on 127.0.0.1:5432 -------------------------------------------
_pg_try_default_port() {
    command -v pg_isready >/dev/null 2>&1 || return 1
    _pg_ready 127.0.0.1 5432 3 || return 1
    if ! _pg_can_login 127.0.0.1 5432; then
        _pg_log "a server answers on 127.0.0.1:5432 but role postgres cannot log in without a password; not using it"
        return 1
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DRAFT_PUBLISHER_DB_NAME}"
    _pg_log "using the PostgreSQL server already running on 127.0.0.1:5432"
}

# --- c. stopped Debian cluster -----------------------------------------------
_pg_try_debian_cluster() {
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    command -v pg_ctlcluster >/dev/null 2>&1 || return 1
    command -v pg_isready >/dev/null 2>&1 || return 1
    compgen -G '/etc/postgresql/*' >/dev/null || return 1

    local lines line ver name port status
    # Newest version first; read everything before starting anything so that
    # nothing in the loop can consume the list from stdin.
    mapfile -t lines < <(pg_lsclusters --no-header 2>/dev/null | sort -k1,1Vr)
    for line in ${lines[@]+"${lines[@]}"}; do
        read -r ver name port status _ <<<"$line"
        [ -n "${port:-}" ] || continue
        case "$status" in
            online*)
                # Running on another port than 5432 (5432 was tried in b).
                [ "$port" != 5432 ] || continue
                ;;
            down*)
                [ "$name" = main ] || continue
                if ! _pg_is_root; then
                    _pg_log "Debian cluster $ver/$name is stopped; not root, so not starting it"
                    continue
                fi
                _pg_log "starting Debian cluster $ver/$name (port $port)"
                if ! pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start </dev/null >&2; then
                    _pg_log "could not start Debian cluster $ver/$name; see /var/log/postgresql/postgresql-$ver-$name.log"
                    continue
                fi
                ;;
            *)
                continue
                ;;
        esac
        if ! _pg_wait_ready 127.0.0.1 "$port"; then
            _pg_log "Debian cluster $ver/$name does not answer on 127.0.0.1:$port"
            continue
        fi
        if ! _pg_can_login 127.0.0.1 "$port"; then
            _pg_log "Debian cluster $ver/$name runs on port $port but role postgres cannot log in over TCP without a password; not using it"
            continue
        fi
        export DATABASE_URL="postgres://postgres@127.0.0.1:${port}/${DRAFT_PUBLISHER_DB_NAME}"
        _pg_log "using Debian cluster $ver/$name on 127.0.0.1:$port"
        return 0
    done
    return 1
}

# --- d. private cluster in .pg/ ------------------------------------------------

# Directory holding initdb/pg_ctl/postgres, newest version first; empty if none.
_pg_find_bindir() {
    local dir
    while IFS= read -r dir; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done < <(
        compgen -G '/usr/lib/postgresql/*/bin' | sort -Vr || true
        if command -v pg_config >/dev/null 2>&1; then pg_config --bindir 2>/dev/null || true; fi
        if command -v initdb >/dev/null 2>&1; then dirname -- "$(command -v initdb)"; fi
    )
    return 1
}

# Run a command as the cluster owner: `postgres` when we are root (initdb and
# pg_ctl refuse to run as root), ourselves otherwise.
_pg_as_owner() {
    if _pg_is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

_pg_private_cluster() {
    local pgdir="$DRAFT_PUBLISHER_ROOT/.pg"
    local data="$pgdir/data" logfile="$pgdir/log"
    local port="${PRIVATE_PG_PORT:-55432}"
    local bindir sockdir

    if ! bindir="$(_pg_find_bindir)"; then
        _pg_log "no PostgreSQL server found and none can be started."
        _pg_log "Either install PostgreSQL (Debian: run scripts/provision.sh as root;"
        _pg_log "macOS: 'brew install postgresql') so a private cluster can be created in .pg/,"
        _pg_log "or point DATABASE_URL at a server, e.g."
        _pg_log "  export DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/${DRAFT_PUBLISHER_DB_NAME}"
        return 1
    fi

    if _pg_is_root && ! id -u postgres >/dev/null 2>&1; then
        _pg_log "the private cluster runs as user postgres, which does not exist: run scripts/provision.sh"
        return 1
    fi

    if ! mkdir -p "$pgdir"; then
        _pg_log "cannot create $pgdir"
        return 1
    fi
    if _pg_is_root; then
        if [ "$(stat -c %U "$pgdir")" != postgres ] ||
            { [ -e "$data" ] && [ "$(stat -c %U "$data")" != postgres ]; }; then
            chown -R postgres: "$pgdir" || return 1
        fi
        if ! runuser -u postgres -- test -w "$pgdir"; then
            _pg_log "user 'postgres' cannot write to $pgdir (check the permissions of its parent directories)"
            return 1
        fi
    fi
    # The log is appended to by us and by the server: it must belong to the owner.
    if [ ! -e "$logfile" ]; then
        : >"$logfile" || return 1
    fi
    if _pg_is_root; then
        chown postgres: "$logfile" || return 1
    fi

    if [ ! -s "$data/PG_VERSION" ]; then
        _pg_log "initialising private cluster in $data ($bindir)"
        if ! _pg_as_owner "$bindir/initdb" -D "$data" --auth=trust -U postgres \
            -E UTF8 --locale=C.UTF-8 >>"$logfile" 2>&1 </dev/null; then
            # C.UTF-8 may not exist everywhere; retry with plain C.
            rm -rf "$data"
            if ! _pg_as_owner "$bindir/initdb" -D "$data" --auth=trust -U postgres \
                -E UTF8 --locale=C >>"$logfile" 2>&1 </dev/null; then
                _pg_log "initdb failed; see $logfile"
                return 1
            fi
        fi
    fi

    if _pg_as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 </dev/null; then
        # Already running: reuse it on whatever port it was started with.
        local running_port
        running_port="$(sed -n 4p "$data/postmaster.pid" 2>/dev/null || true)"
        if [ -n "$running_port" ] && [ "$running_port" != "$port" ]; then
            _pg_log "private cluster is already running on port $running_port (not $port); reusing it"
            port="$running_port"
        fi
    else
        # Unix socket paths are limited to ~107 bytes; fall back to TCP only.
        sockdir="$pgdir"
        if [ "${#sockdir}" -gt 90 ]; then
            sockdir=""
        fi
        if _pg_ready 127.0.0.1 "$port" 2; then
            _pg_log "port $port is already used by another PostgreSQL server; set PRIVATE_PG_PORT to a free port"
            return 1
        fi
        _pg_log "starting private cluster on 127.0.0.1:$port (log: $logfile)"
        if ! _pg_as_owner "$bindir/pg_ctl" -D "$data" -l "$logfile" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$sockdir'" \
            start >/dev/null 2>&1 </dev/null; then
            _pg_log "could not start the private cluster on port $port; last log lines:"
            tail -n 15 "$logfile" >&2 || true
            _pg_log "if the port is taken, set PRIVATE_PG_PORT to a free port"
            return 1
        fi
    fi

    if ! _pg_wait_ready 127.0.0.1 "$port"; then
        _pg_log "private cluster does not answer on 127.0.0.1:$port; see $logfile"
        return 1
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:${port}/${DRAFT_PUBLISHER_DB_NAME}"
    _pg_log "using the private PostgreSQL cluster in .pg/ on 127.0.0.1:$port ($bindir)"
}

# Stop the private cluster in .pg/ if it is running.
stop_private_postgres() {
    local data="$DRAFT_PUBLISHER_ROOT/.pg/data" bindir
    if [ ! -f "$data/postmaster.pid" ]; then
        _pg_log "private cluster is not running"
        return 0
    fi
    if ! bindir="$(_pg_find_bindir)"; then
        _pg_log "pg_ctl not found"
        return 1
    fi
    _pg_as_owner "$bindir/pg_ctl" -D "$data" -w stop -m fast </dev/null >&2
}

ensure_postgres() {
    if [ -n "${DATABASE_URL:-}" ]; then
        _pg_use_given_url
        return
    fi
    if [ "${DRAFT_PUBLISHER_PRIVATE_PG:-0}" != 1 ]; then
        if _pg_try_default_port; then
            return 0
        fi
        if _pg_try_debian_cluster; then
            return 0
        fi
    fi
    _pg_private_cluster
}

# Executed rather than sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    case "${1:-}" in
        "")
            ensure_postgres
            printf 'DATABASE_URL=%s\n' "$DATABASE_URL"
            ;;
        stop)
            stop_private_postgres
            ;;
        *)
            printf 'usage: %s [stop]\n' "$0" >&2
            exit 2
            ;;
    esac
fi
