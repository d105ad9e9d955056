#!/usr/bin/env bash
# The container image, smoke-tested the way it is deployed: scripts/image.sh
# builds it (twice: the digests must be equal), then it runs under podman
# against a fresh database of the test PostgreSQL, configured by environment
# variables only. Through grpcurl: health SERVING, CreateDraft, PublishDraft,
# GetEvent. Then SIGTERM, and the container must exit 0 within
# IMAGE_STOP_TIMEOUT seconds (default 30).
#
#   bash scripts/tests.d/image.sh
#
# IMAGE_PROFILE (default dev here: the binary the Rust tests built; a release
# build would add minutes to CI) and IMAGE_TAG (default dev) go to
# scripts/image.sh. IMAGE_START_TIMEOUT (seconds, default 60) bounds the
# wait for SERVING.
set -euo pipefail

cd -- "${REPO_ROOT:-$(dirname -- "${BASH_SOURCE[0]}")/../..}"
# shellcheck source=scripts/lib/tools.sh
. scripts/lib/tools.sh

if [ -z "${DATABASE_URL:-}" ]; then
    # shellcheck source=scripts/postgres.sh
    . scripts/postgres.sh
    ensure_postgres
fi
ensure_python_env scripts/tools/grpcurl
venv="$PWD/scripts/tools/grpcurl/.venv"
PATH="$venv/bin:$PATH"
export CONTAINERS_CONF="$PWD/scripts/containers.conf"
export IMAGE_PROFILE="${IMAGE_PROFILE:-dev}" IMAGE_TAG="${IMAGE_TAG:-dev}"
image="localhost/draft-publisher:$IMAGE_TAG"
suite_start=$SECONDS

fail() {
    printf 'FAIL: %s\n' "$1" >&2
    if [ -n "${out:-}" ]; then
        printf -- '--- output:\n%s\n---\n' "$out" >&2
    fi
    exit 1
}
log() {
    printf 'image suite: %s (%d s)\n' "$1" "$((SECONDS - suite_start))" >&2
}

# --- build, twice --------------------------------------------------------------
first="$(bash scripts/image.sh)"
log "built $image $first"
second="$(bash scripts/image.sh 2>/dev/null)"
[ "$first" = "$second" ] || fail "two builds of one commit gave two digests: $first, $second"
log "built again: the same digest"
[ "$(podman image inspect --format '{{.Config.User}}' "$image")" = 10001:10001 ] ||
    fail "the image does not run as user 10001:10001"

# --- run it against a fresh database ---------------------------------------------
# DATABASE_URL with its database name replaced (query parameters kept).
with_database() {
    local base="${DATABASE_URL%%\?*}" query=""
    [[ "$DATABASE_URL" != *\?* ]] || query="?${DATABASE_URL#*\?}"
    printf '%s/%s%s' "${base%/*}" "$1" "$query"
}
database="draft_publisher_image_$(date +%s)_$$"
container="draft-publisher-smoke-$$"

cleanup() {
    local status=$?
    if [ "$status" -ne 0 ] && podman container exists "$container" 2>/dev/null; then
        echo "--- container log, last lines:" >&2
        podman logs --tail 30 "$container" >&2 || true
    fi
    podman rm --force --ignore "$container" >/dev/null 2>&1 || true
    PGOPTIONS='-c client_min_messages=warning' psql -X -q -w -d "$(with_database postgres)" \
        -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" </dev/null >/dev/null ||
        echo "could not drop database $database" >&2
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Port 0: the kernel picks a free port on the host's network, read back
# from the log. The service creates its database.
podman run --detach --name "$container" \
    --env DATABASE_URL="$(with_database "$database")" \
    --env DRAFT_PUBLISHER_LISTEN_ADDR=127.0.0.1:0 \
    "$image" >/dev/null

running() {
    [ "$(podman container inspect --format '{{.State.Running}}' "$container")" = true ]
}
deadline=$((SECONDS + ${IMAGE_START_TIMEOUT:-60}))
addr=""
until [ -n "$addr" ]; do
    addr="$(podman logs "$container" 2>&1 |
        sed -n 's/.*"message":"serving gRPC","local_addr":"\([0-9.:]*\)".*/\1/p' | head -n 1)"
    [ -n "$addr" ] && break
    running || fail "the container exited before it listened"
    [ "$SECONDS" -lt "$deadline" ] || fail "the container did not listen within ${IMAGE_START_TIMEOUT:-60} s"
    sleep 0.2
done
until out="$(grpcurl -plaintext -max-time 2 -d '{"service": "draftpublisher.v1.DraftPublisher"}' \
    "$addr" grpc.health.v1.Health/Check 2>&1)" && [[ "$out" == *'"status": "SERVING"'* ]]; do
    running || fail "the container exited before health reported SERVING"
    [ "$SECONDS" -lt "$deadline" ] || fail "health did not report SERVING within ${IMAGE_START_TIMEOUT:-60} s"
    sleep 0.2
done
log "SERVING on $addr (database $database)"
uid="$(podman top "$container" huser | tail -n 1 | tr -d ' ')"
[ "$uid" = 10001 ] || fail "the service runs as user '$uid', expected 10001"

# --- a draft created and published through it ---------------------------------
org=0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f
call() {
    local rpc="$1" body="$2"
    out="$(grpcurl -plaintext -emit-defaults -max-time 10 -d "$body" "$addr" "draftpublisher.v1.DraftPublisher/$rpc" 2>&1)" ||
        fail "$rpc failed"
}
json() {
    printf '%s' "$out" | "$venv/bin/python" -c "import json, sys; print(json.load(sys.stdin)$1)"
}

call CreateDraft "{\"organization_id\": \"$org\", \"request_id\": \"$(cat /proc/sys/kernel/random/uuid)\",
    \"title\": \"Image smoke test\", \"location\": \"Berlin\",
    \"starts_at\": \"2030-05-01T18:00:00Z\", \"ends_at\": \"2030-05-01T21:00:00Z\"}"
draft="$(json '["draft"]["id"]')"
call PublishDraft "{\"organization_id\": \"$org\", \"draft_id\": \"$draft\"}"
[ "$(json '["alreadyPublished"]')" = False ] || fail "PublishDraft: expected alreadyPublished false"
[ "$(json '["event"]["status"]')" = EVENT_STATUS_PUBLISHED ] || fail "PublishDraft: the event is not published"
event="$(json '["eventId"]')"
call GetEvent "{\"organization_id\": \"$org\", \"event_id\": \"$event\"}"
[ "$(json '["event"]["draftId"]')" = "$draft" ] || fail "GetEvent: not the published draft's event"
log "draft $draft published as event $event"

# --- SIGTERM: a graceful exit 0 ---------------------------------------------------
podman kill --signal TERM "$container" >/dev/null
status="$(timeout "${IMAGE_STOP_TIMEOUT:-30}" podman wait "$container")" ||
    fail "the container did not exit within ${IMAGE_STOP_TIMEOUT:-30} s of SIGTERM"
[ "$status" = 0 ] || fail "the container exited with status $status after SIGTERM"
log "SIGTERM: exit status 0"
echo "image: smoke test passed in $((SECONDS - suite_start)) s"
