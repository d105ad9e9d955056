#!/usr/bin/env bash
#
# Source this file (". scripts/nats.sh") and call `ensure_nats`. It makes sure
# a NATS server with JetStream listens where the suites expect one and exports
# NATS_URL, which the service reads for its relay (`serve --nats-url`).
#
#   a. NATS_URL already set   -> its first server's port (default 4222);
#      otherwise 127.0.0.1:4222.
#   b. a server answers there  -> used as is, if it has JetStream.
#   c. nothing answers and the host is this machine -> started in the
#      background, as
#        nats-server -a 127.0.0.1 -p PORT -js -sd STORE
#      with STORE /var/lib/nats-server when writable (and PORT is 4222),
#      else a temporary folder, and its log in ${TMPDIR:-/tmp}/draft-publisher-nats-PORT.log.
#      Never through systemd: Debian's unit starts it without JetStream.
#
# The Rust tests that stop or restart NATS start private servers of their own
# (tests/support/nats.rs) and need none of this. nats-server comes from the
# Debian package nats-server (scripts/provision.sh installs it).
#
# Executed directly instead of sourced:
#   scripts/nats.sh          ensure a server and print NATS_URL=...
#
# Safe to source into a shell running with `set -euo pipefail`; shell options
# are not modified.

NATS_START_TIMEOUT="${NATS_START_TIMEOUT:-30}"

_nats_log() {
    printf 'nats: %s\n' "$*" >&2
}

# The INFO line a NATS server sends first on a new connection; fails when
# nothing answers on $1:$2 within two seconds.
_nats_info() {
    # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 1 line <&3 && printf "%s\n" "$line"' \
        _ "$1" "$2" 2>/dev/null | grep '^INFO '
}

# Host and port of NATS_URL's first server ("nats://host:port,..." or
# "host:port"), as "HOST PORT".
_nats_host_port() {
    local url="${1%%,*}" host port
    url="${url#*://}"
    url="${url##*@}"
    url="${url%%/*}"
    host="${url%:*}"
    port="${url##*:}"
    if [ "$host" = "$url" ]; then
        port=4222
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "${port:-4222}"
}

# /var/lib/nats-server is the store of the server on the usual port only: two
# servers sharing one store would corrupt it.
_nats_store_dir() {
    if [ "$1" = 4222 ] && mkdir -p /var/lib/nats-server 2>/dev/null && [ -w /var/lib/nats-server ]; then
        printf '%s\n' /var/lib/nats-server
    else
        mktemp -d "${TMPDIR:-/tmp}/draft-publisher-nats.XXXXXX"
    fi
}

# Starts nats-server on 127.0.0.1:$1 in the background (in a session of its
# own, so it outlives the calling script like a database server does) and
# waits, bounded, until it answers.
_nats_start() {
    local port="$1" store logfile deadline
    if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
        _nats_log "nothing listens on 127.0.0.1:$port and nats-server is not installed"
        _nats_log "install it (Debian: scripts/provision.sh test), or point NATS_URL at a NATS server with JetStream"
        return 1
    fi
    store="$(_nats_store_dir "$port")" || return 1
    logfile="${TMPDIR:-/tmp}/draft-publisher-nats-$port.log"
    _nats_log "starting nats-server -a 127.0.0.1 -p $port -js -sd $store (log: $logfile)"
    PATH="$PATH:/usr/sbin" setsid nats-server -a 127.0.0.1 -p "$port" -js -sd "$store" \
        </dev/null >>"$logfile" 2>&1 &
    local pid=$!
    deadline=$((SECONDS + NATS_START_TIMEOUT))
    until _nats_info 127.0.0.1 "$port" >/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            _nats_log "nats-server did not answer on 127.0.0.1:$port; last log lines:"
            tail -n 15 "$logfile" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

ensure_nats() {
    local host port info
    read -r host port < <(_nats_host_port "${NATS_URL:-nats://127.0.0.1:4222}")
    if ! info="$(_nats_info "$host" "$port")"; then
        case "$host" in
            127.0.0.1 | localhost) _nats_start "$port" || return 1 ;;
            *)
                _nats_log "NATS_URL is set ($NATS_URL) but no NATS server answers on $host:$port"
                return 1
                ;;
        esac
        info="$(_nats_info "$host" "$port")" || return 1
    fi
    if [[ "$info" != *'"jetstream":true'* ]]; then
        _nats_log "the NATS server on $host:$port has no JetStream; start it with -js"
        return 1
    fi
    export NATS_URL="${NATS_URL:-nats://127.0.0.1:$port}"
    _nats_log "using the NATS server with JetStream on $host:$port"
}

# Executed rather than sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    ensure_nats
    printf 'NATS_URL=%s\n' "$NATS_URL"
fi
