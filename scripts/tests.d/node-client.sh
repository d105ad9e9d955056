#!/usr/bin/env bash
# The Node client: @grpc/grpc-js with the proto loaded at run time by
# @grpc/proto-loader, run by node's test runner against a real server.
#
#   bash scripts/tests.d/node-client.sh
#
# Dependencies are pinned in tests/clients/node/package-lock.json and
# installed into tests/clients/node/node_modules/.
set -euo pipefail

cd -- "${REPO_ROOT:-$(dirname -- "${BASH_SOURCE[0]}")/../..}"
# shellcheck source=scripts/lib/tools.sh
. scripts/lib/tools.sh
# shellcheck source=scripts/lib/test-server.sh
. scripts/lib/test-server.sh
# shellcheck source=scripts/nats.sh
. scripts/nats.sh

client=tests/clients/node
ensure_node_modules "$client"
# The tests consume the relay's stream from the same NATS server (NATS_URL).
ensure_nats
start_test_server --nats-url "$NATS_URL"

report="$(mktemp)"
status=0
(cd "$client" && node --test --test-reporter=tap test/*.test.mjs) | tee "$report" || status=$?
# node's runner exits 0 when it finds no test; that must not pass.
if [ "$status" -eq 0 ] && ! grep -Eq '^# pass [1-9]' "$report"; then
    echo "FAIL: node's test runner ran no test" >&2
    status=1
fi
rm -f "$report"
exit "$status"
