#!/usr/bin/env bash
# grpcurl against a real server, with no proto files (server reflection):
# `list`, `describe` of the service and of every message and enum, and one
# JSON call of every RPC, PublishDraft twice. Each command is the one
# README.md shows, character for character (the suite checks that), run with
# SERVER set to the test server instead of localhost:50051.
#
#   bash scripts/tests.d/grpcurl.sh
#
# grpcurl 1.8.6 comes pinned from scripts/tools/grpcurl/requirements.txt.
set -euo pipefail

cd -- "${REPO_ROOT:-$(dirname -- "${BASH_SOURCE[0]}")/../..}"
# shellcheck source=scripts/lib/tools.sh
. scripts/lib/tools.sh
# shellcheck source=scripts/lib/test-server.sh
. scripts/lib/test-server.sh

ensure_python_env scripts/tools/grpcurl
venv="$PWD/scripts/tools/grpcurl/.venv"
PATH="$venv/bin:$PATH"
start_test_server
echo "$(grpcurl -version 2>&1) against $TEST_SERVER_ADDR"

readme="$(cat README.md)"
proto=proto/draftpublisher/v1/draft_publisher.proto
passed=0
# Read by the commands below, through eval.
SERVER="$TEST_SERVER_ADDR"
ORG=0191d3e4-5b6a-7c8d-9e0f-1a2b3c4d5e6f
DRAFT=""
EVENT=""
export SERVER ORG DRAFT EVENT

fail() {
    printf 'FAIL: %s\n' "$1" >&2
    if [ -n "${out:-}" ]; then
        printf -- '--- output of the command:\n%s\n---\n' "$out" >&2
    fi
    exit 1
}

# example NAME EXPECTED_EXIT_STATUS, the command on stdin: checks README.md
# shows the command verbatim, runs it and leaves its output in $out.
example() {
    local name="$1" expected="$2" command status
    command="$(cat)"
    if [[ "$readme" != *"$command"* ]]; then
        fail "$name: README.md does not show this command verbatim:
$command"
    fi
    out=""
    status=0
    out="$(eval "$command" 2>&1)" || status=$?
    if [ "$status" -ne "$expected" ]; then
        fail "$name: exit status $status, expected $expected"
    fi
    current="$name"
}

# expect TEXT...: every TEXT occurs in the last example's output.
expect() {
    local text
    for text in "$@"; do
        if [[ "$out" != *"$text"* ]]; then
            fail "$current: output lacks: $text"
        fi
    done
    passed=$((passed + 1))
    echo "ok: $current"
}

# json EXPRESSION: a value of the last example's JSON output, e.g. '["draft"]["id"]'.
json() {
    printf '%s' "$out" | "$venv/bin/python" -c "import json, sys; print(json.load(sys.stdin)$1)"
}

example list 0 <<'CMD'
grpcurl -plaintext $SERVER list
CMD
expect $'draftpublisher.v1.DraftPublisher\n' $'grpc.health.v1.Health\n'

example "describe the service" 0 <<'CMD'
grpcurl -plaintext $SERVER describe draftpublisher.v1.DraftPublisher
CMD
rpcs=()
for rpc in CreateDraft GetDraft UpdateDraft ListDrafts PublishDraft GetEvent; do
    rpcs+=("rpc $rpc ( .draftpublisher.v1.${rpc}Request ) returns ( .draftpublisher.v1.${rpc}Response );")
done
expect "service DraftPublisher {" "${rpcs[@]}" "// Exactly once:"

example "describe every message and enum" 0 <<'CMD'
for type in Draft Event DraftStatus EventStatus \
    CreateDraftRequest CreateDraftResponse GetDraftRequest GetDraftResponse \
    UpdateDraftRequest UpdateDraftResponse ListDraftsRequest ListDraftsResponse \
    PublishDraftRequest PublishDraftResponse GetEventRequest GetEventResponse; do
  grpcurl -plaintext $SERVER describe draftpublisher.v1.$type
done
CMD
declared=()
while read -r kind name _; do
    declared+=("draftpublisher.v1.$name is a$([ "$kind" = enum ] && echo 'n enum' || echo ' message'):")
done < <(grep -E '^(message|enum) ' "$proto")
[ "${#declared[@]}" -eq 16 ] || fail "expected 16 messages and enums in $proto, found ${#declared[@]}"
# Reflection serves the proto's comments: every field and enum value shown
# is preceded by its comment.
uncommented="$(printf '%s\n' "$out" | awk '
    /^  [A-Za-z0-9_.]+ [a-z_0-9]+ = [0-9]+;$/ || /^  [A-Z_0-9]+ = [0-9]+;$/ {
        if (previous !~ /^  \/\//) print
    }
    { previous = $0 }')"
[ -z "$uncommented" ] || fail "fields or enum values shown without a comment: $uncommented"
expect "${declared[@]}" "  // When non-zero, the update applies only if the draft's version is still"

example CreateDraft 0 <<'CMD'
grpcurl -plaintext -d @ $SERVER draftpublisher.v1.DraftPublisher/CreateDraft <<EOF
{"organization_id": "$ORG", "request_id": "0191d3e4-0000-7000-8000-000000000001",
 "title": "Rust meetup", "location": "Berlin",
 "starts_at": "2030-05-01T18:00:00Z", "ends_at": "2030-05-01T21:00:00Z"}
EOF
CMD
expect '"title": "Rust meetup"' '"startsAt": "2030-05-01T18:00:00Z"' '"status": "DRAFT_STATUS_DRAFT"' \
    '"version": "1"'
DRAFT="$(json '["draft"]["id"]')"

example GetDraft 0 <<'CMD'
grpcurl -plaintext -d @ $SERVER draftpublisher.v1.DraftPublisher/GetDraft <<EOF
{"organization_id": "$ORG", "draft_id": "$DRAFT"}
EOF
CMD
expect "\"id\": \"$DRAFT\"" '"location": "Berlin"'

example UpdateDraft 0 <<'CMD'
grpcurl -plaintext -d @ $SERVER draftpublisher.v1.DraftPublisher/UpdateDraft <<EOF
{"organization_id": "$ORG", "draft_id": "$DRAFT", "description": "Talks and pizza",
 "update_mask": {"paths": ["description"]}, "expected_version": 1}
EOF
CMD
expect '"description": "Talks and pizza"' '"title": "Rust meetup"' '"version": "2"'

example ListDrafts 0 <<'CMD'
grpcurl -plaintext -d @ $SERVER draftpublisher.v1.DraftPublisher/ListDrafts <<EOF
{"organization_id": "$ORG", "page_size": 10}
EOF
CMD
[ "$(json '["drafts"].__len__()')" = 1 ] || fail "ListDrafts: expected exactly one draft"
expect "\"id\": \"$DRAFT\""

example "PublishDraft, first call" 0 <<'CMD'
grpcurl -plaintext -emit-defaults -d @ $SERVER draftpublisher.v1.DraftPublisher/PublishDraft <<EOF
{"organization_id": "$ORG", "draft_id": "$DRAFT"}
EOF
CMD
expect '"alreadyPublished": false' '"status": "EVENT_STATUS_PUBLISHED"' '"status": "DRAFT_STATUS_PUBLISHED"'
EVENT="$(json '["eventId"]')"
[ -n "$EVENT" ] || fail "PublishDraft returned no eventId"

# The same command again: the same event, already published.
example "PublishDraft, second call" 0 <<'CMD'
grpcurl -plaintext -emit-defaults -d @ $SERVER draftpublisher.v1.DraftPublisher/PublishDraft <<EOF
{"organization_id": "$ORG", "draft_id": "$DRAFT"}
EOF
CMD
expect '"alreadyPublished": true' "\"eventId\": \"$EVENT\""

example GetEvent 0 <<'CMD'
grpcurl -plaintext -d @ $SERVER draftpublisher.v1.DraftPublisher/GetEvent <<EOF
{"organization_id": "$ORG", "event_id": "$EVENT"}
EOF
CMD
expect "\"id\": \"$EVENT\"" "\"draftId\": \"$DRAFT\"" '"description": "Talks and pizza"'

# grpcurl exits 64 + the status code: 67 for INVALID_ARGUMENT.
example "an invalid call and its error details" 67 <<'CMD'
grpcurl -plaintext -d @ $SERVER draftpublisher.v1.DraftPublisher/GetDraft <<EOF
{"organization_id": "$ORG", "draft_id": "not-a-uuid"}
EOF
CMD
expect 'Code: InvalidArgument' \
    '{"@type":"type.googleapis.com/google.rpc.ErrorInfo","domain":"draftpublisher.v1","reason":"INVALID_REQUEST"}' \
    '{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"draft_id",'

example "health" 0 <<'CMD'
grpcurl -plaintext -d '{"service": "draftpublisher.v1.DraftPublisher"}' $SERVER grpc.health.v1.Health/Check
CMD
expect '"status": "SERVING"'

echo "grpcurl: $passed passed, 0 failed"
