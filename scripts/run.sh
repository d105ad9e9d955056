#!/usr/bin/env bash
# Run the draft-publisher gRPC service against a PostgreSQL server chosen (or
# started) by scripts/postgres.sh. Extra arguments go to `draft-publisher serve`.
#
#   scripts/run.sh [serve options...]
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh
# shellcheck source=scripts/cargo.sh
. scripts/cargo.sh

bash scripts/provision.sh run
ensure_postgres
ensure_cargo

exec cargo run --release --bin draft-publisher -- serve "$@"
