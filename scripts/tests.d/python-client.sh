#!/usr/bin/env bash
# The Python client: stubs generated from the proto with grpcio-tools at test
# time (into a temporary folder), then pytest against a real server.
#
#   bash scripts/tests.d/python-client.sh [pytest arguments...]
#
# Dependencies are pinned in tests/clients/python/requirements.txt and
# installed into tests/clients/python/.venv/.
set -euo pipefail

cd -- "${REPO_ROOT:-$(dirname -- "${BASH_SOURCE[0]}")/../..}"
# shellcheck source=scripts/lib/tools.sh
. scripts/lib/tools.sh
# shellcheck source=scripts/lib/test-server.sh
. scripts/lib/test-server.sh
# shellcheck source=scripts/nats.sh
. scripts/nats.sh

client=tests/clients/python
ensure_python_env "$client"
# The tests consume the relay's stream from the same NATS server (NATS_URL).
ensure_nats
start_test_server --nats-url "$NATS_URL"

status=0
"$client/.venv/bin/python" -m pytest -p no:cacheprovider --rootdir "$client" "$client" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "FAIL: pytest collected no tests in $client" >&2
fi
exit "$status"
