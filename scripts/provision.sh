#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to run or test DraftPublisher.
# The one place in this repository that installs system packages or creates
# system users: nothing else runs apt-get or useradd, so running the service
# or its tests never changes the machine behind your back.
#
#   scripts/provision.sh [run|test|image]   # default: test
#   scripts/provision.sh --check [run|test|image]
#
# `run` is what scripts/run.sh needs, `image` what scripts/image.sh needs,
# `test` what scripts/test.sh and CI need (which includes `image`: a suite
# builds and runs the image). Only what is missing is installed (as root,
# with apt-get); when nothing is missing this prints nothing and changes
# nothing. Not root: it lists what is missing and the command that installs
# it (exit status 0, so that what needs nothing missing still runs).
# `--check`: the same list, changing nothing, exit status 1 when anything is
# missing. scripts/run.sh, scripts/test.sh, scripts/image.sh and .ci/run call
# it before anything else.
set -euo pipefail

check_only=0
if [ "${1:-}" = --check ]; then
    check_only=1
    shift
fi
purpose="${1:-test}"
case "$purpose" in
    run | test | image) ;;
    *)
        echo "usage: $0 [--check] [run|test|image]" >&2
        exit 2
        ;;
esac

log() {
    printf 'provision: %s\n' "$*" >&2
}

missing=()
# need PACKAGE WHY CHECK...: PACKAGE is missing when the CHECK command fails.
need() {
    local package="$1" why="$2"
    shift 2
    if ! "$@" >/dev/null 2>&1; then
        missing+=("$package")
        log "missing: $package ($why)"
    fi
}

has() {
    command -v "$1"
}

# PostgreSQL's server binaries, where Debian puts them (pg_ctl is not on PATH).
has_postgres_server() {
    compgen -G '/usr/lib/postgresql/*/bin/pg_ctl'
}

# Debian puts nats-server in /usr/sbin, which a non-root PATH may lack.
has_nats_server() {
    has nats-server || [ -x /usr/sbin/nats-server ]
}

# --- what each purpose needs ---------------------------------------------------
# With DATABASE_URL set the scripts use that server and start none of their
# own; otherwise a local server, or the binaries to start a private one.
if [ "$purpose" != image ]; then
    if [ -z "${DATABASE_URL:-}" ]; then
        need postgresql "a PostgreSQL server for the service and its tests" has_postgres_server
    fi
    need postgresql-client "psql and pg_isready, to find a server and drop test databases" has psql
fi
if [ "$purpose" != run ]; then
    # runc named beside podman: Debian's podman takes crun first otherwise,
    # and crun fails on cgroup set-ups like these machines' (runc works).
    need podman "builds and runs the container image" has podman
    need runc "the OCI runtime scripts/containers.conf names" has runc
    need ca-certificates "CA certificates the image trusts for TLS to NATS" \
        test -s /etc/ssl/certs/ca-certificates.crt
fi
if [ "$purpose" = test ]; then
    need python3-venv "the Python client tests and the pinned grpcurl" python3 -c "import ensurepip, venv"
    need nodejs "the Node client tests and the pinned buf" has node
    need npm "installs the Node client's and buf's pinned packages" has npm
    need curl "the shell suites' gRPC health check" has curl
    need nats-server "NATS with JetStream for the relay's client tests (scripts/nats.sh)" has_nats_server
fi

# The private cluster runs as `postgres`: PostgreSQL refuses to run as root.
# Debian's package creates the user; other installs may not have.
needs_user=0
if [ "$(id -u)" -eq 0 ] && ! id -u postgres >/dev/null 2>&1 &&
    { [ -z "${DATABASE_URL:-}" ] && [ "$purpose" = run ] || [ "$purpose" = test ]; }; then
    needs_user=1
    log "missing: system user postgres (owner of private PostgreSQL clusters)"
fi

if [ "${#missing[@]}" -eq 0 ] && [ "$needs_user" -eq 0 ]; then
    exit 0
fi

if [ "$check_only" -eq 1 ] || [ "$(id -u)" -ne 0 ] || ! has apt-get >/dev/null; then
    if [ "${#missing[@]}" -gt 0 ]; then
        log "install with: sudo apt-get install ${missing[*]} (or run scripts/provision.sh as root)"
    fi
    # Without root the steps that need what is missing fail and say so;
    # the others still run.
    [ "$check_only" -eq 0 ]
    exit
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing with apt-get: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq </dev/null >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2
fi
if ! id -u postgres >/dev/null 2>&1 && [ "$needs_user" -eq 1 ]; then
    log "creating system user postgres"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin postgres
fi
