#!/usr/bin/env bash
# The demo as a test: examples/double_publish.rs sends 50 concurrent
# PublishDraft calls for one draft to a real server; it exits non-zero
# unless they yield exactly one event id and exactly one winner.
#
#   bash scripts/tests.d/demo.sh
set -euo pipefail

cd -- "${REPO_ROOT:-$(dirname -- "${BASH_SOURCE[0]}")/../..}"
# shellcheck source=scripts/lib/test-server.sh
. scripts/lib/test-server.sh

start_test_server
output="$(cargo run --quiet --example double_publish -- --addr "$TEST_SERVER_URL" --count 50)"
printf '%s\n' "$output" | tail -n 2
winners="$(printf '%s\n' "$output" | grep -c '^call .* already_published=false$' || true)"
repeats="$(printf '%s\n' "$output" | grep -c '^call .* already_published=true$' || true)"
if [ "$winners" -ne 1 ] || [ "$repeats" -ne 49 ]; then
    echo "FAIL: expected 1 winner and 49 repeats, got $winners and $repeats" >&2
    exit 1
fi
echo "demo: 1 passed, 0 failed"
