#!/usr/bin/env bash
# grpcurl against a real server, with no proto files (server reflection):
# `list`, `describe` of the service and of every message and enum, and one
# JSON call of every RPC, PublishDraft twice. The commands are those of
# README.md and docs/consuming.md: each fenced block marked
# ```sh title="grpcurl: NAME"``` is read from them and run with SERVER set to
# the test server instead of localhost:50051, so the prose around the blocks
# can change without breaking this suite.
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

# The documents whose marked blocks are run.
documents=(README.md docs/consuming.md)

# The names of the documents' marked blocks, and the body of one of them.
marked_blocks() {
    sed -n 's/^```sh title="grpcurl: \([a-z-]*\)"$/\1/p' "${documents[@]}"
}
block() {
    awk -v open="\`\`\`sh title=\"grpcurl: $1\"" '
        $0 == open { inside = 1; next }
        inside && $0 == "```" { exit }
        inside { print }' "${documents[@]}"
}
checked=" "

# example NAME EXPECTED_EXIT_STATUS: runs the documents' block NAME, checks its
# exit status and leaves its output in $out.
example() {
    local name="$1" expected="$2" command status
    out=""
    command="$(block "$name")"
    [ -n "$command" ] || fail "no block marked grpcurl: $name in ${documents[*]}"
    status=0
    out="$(eval "$command" 2>&1)" || status=$?
    if [ "$status" -ne "$expected" ]; then
        fail "$name: exit status $status, expected $expected"
    fi
    current="$name"
    checked+="$name "
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

example list 0
expect $'draftpublisher.v1.DraftPublisher\n' $'grpc.health.v1.Health\n'

example describe 0
rpcs=()
for rpc in CreateDraft GetDraft UpdateDraft ListDrafts PublishDraft GetEvent ListEventChanges; do
    rpcs+=("rpc $rpc ( .draftpublisher.v1.${rpc}Request ) returns ( .draftpublisher.v1.${rpc}Response );")
done
rpcs+=("rpc WatchEventChanges ( .draftpublisher.v1.WatchEventChangesRequest ) returns ( stream .draftpublisher.v1.WatchEventChangesResponse );")
expect "service DraftPublisher {" "${rpcs[@]}" "// Exactly once:"

example describe-types 0
declared=()
while read -r kind name _; do
    declared+=("draftpublisher.v1.$name is a$([ "$kind" = enum ] && echo 'n enum' || echo ' message'):")
done < <(grep -E '^(message|enum) ' "$proto")
[ "${#declared[@]}" -eq 22 ] || fail "expected 22 messages and enums in $proto, found ${#declared[@]}"
# Reflection serves the proto's comments: every field and enum value shown
# is preceded by its comment.
uncommented="$(printf '%s\n' "$out" | awk '
    /^  [A-Za-z0-9_.]+ [a-z_0-9]+ = [0-9]+;$/ || /^  [A-Z_0-9]+ = [0-9]+;$/ {
        if (previous !~ /^  \/\//) print
    }
    { previous = $0 }')"
[ -z "$uncommented" ] || fail "fields or enum values shown without a comment: $uncommented"
expect "${declared[@]}" "  // When non-zero, the update applies only if the draft's version is still"

example create-draft 0
expect '"title": "Rust meetup"' '"startsAt": "2030-05-01T18:00:00Z"' '"status": "DRAFT_STATUS_DRAFT"' \
    '"version": "1"'
DRAFT="$(json '["draft"]["id"]')"

example get-draft 0
expect "\"id\": \"$DRAFT\"" '"location": "Berlin"'

example update-draft 0
expect '"description": "Talks and pizza"' '"title": "Rust meetup"' '"version": "2"'

example list-drafts 0
[ "$(json '["drafts"].__len__()')" = 1 ] || fail "ListDrafts: expected exactly one draft"
expect "\"id\": \"$DRAFT\""

example publish-draft 0
expect '"alreadyPublished": false' '"status": "EVENT_STATUS_PUBLISHED"' '"status": "DRAFT_STATUS_PUBLISHED"'
EVENT="$(json '["eventId"]')"
[ -n "$EVENT" ] || fail "PublishDraft returned no eventId"

# The same command again: the same event, already published.
example publish-draft 0
expect '"alreadyPublished": true' "\"eventId\": \"$EVENT\""

example get-event 0
expect "\"id\": \"$EVENT\"" "\"draftId\": \"$DRAFT\"" '"description": "Talks and pizza"'

# The feed holds the publication's one change, listed and then watched.
example list-event-changes 0
[ "$(json '["changes"].__len__()')" = 1 ] || fail "ListEventChanges: expected exactly one change"
expect "\"id\": \"$EVENT.published\"" '"type": "EVENT_CHANGE_TYPE_PUBLISHED"' '"nextCursor": "'

# grpcurl exits 64 + the status code: the watch ends at -max-time with
# DEADLINE_EXCEEDED (68), after the backlog; INVALID_ARGUMENT is 67.
example watch-event-changes 68
expect "\"id\": \"$EVENT.published\"" '"type": "EVENT_CHANGE_TYPE_PUBLISHED"' \
    "\"organizationId\": \"$ORG\"" 'Code: DeadlineExceeded'

example invalid-call 67
expect 'Code: InvalidArgument' \
    '{"@type":"type.googleapis.com/google.rpc.ErrorInfo","domain":"draftpublisher.v1","reason":"INVALID_REQUEST"}' \
    '{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"draft_id",'

example health 0
expect '"status": "SERVING"'

# Every marked block was run: none shows a command this suite leaves unchecked.
for name in $(marked_blocks); do
    [[ "$checked" == *" $name "* ]] || fail "the block grpcurl: $name is not checked by this suite"
done

echo "grpcurl: $passed passed, 0 failed"
