#!/usr/bin/env bash
# Run the whole test suite against a PostgreSQL server chosen (or started) by
# scripts/postgres.sh and the NATS server of scripts/nats.sh. Extra arguments go to `cargo nextest run` (or to
# `cargo test` when cargo-nextest is not installed), e.g. a test name filter.
#
#   scripts/test.sh [cargo test/nextest arguments...]
#
# Every suite runs even if an earlier one failed; the exit status is non-zero
# if any of them failed.
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"
export REPO_ROOT

# shellcheck source=scripts/postgres.sh
. scripts/postgres.sh
# shellcheck source=scripts/cargo.sh
. scripts/cargo.sh
# shellcheck source=scripts/nats.sh
. scripts/nats.sh

bash scripts/provision.sh test
ensure_postgres
ensure_nats
ensure_cargo

failed=()

# --- Rust tests ----------------------------------------------------------------
if cargo nextest --version >/dev/null 2>&1; then
    nextest_args=()
    if [ "${CI:-}" = true ] && [ -f .config/nextest.toml ]; then
        nextest_args+=(--profile ci)
    fi
    echo "==> cargo nextest run" >&2
    if ! cargo nextest run --no-fail-fast ${nextest_args[@]+"${nextest_args[@]}"} "$@"; then
        failed+=("cargo nextest run")
    fi
else
    echo "==> cargo test (cargo-nextest not installed: 'cargo install --locked cargo-nextest')" >&2
    if ! cargo test --no-fail-fast "$@"; then
        failed+=("cargo test")
    fi
fi

# --- Further suites ---------------------------------------------------------
# HOOK: every scripts/tests.d/*.sh is run with bash, in name order, after the
# Rust tests (client tests in Python/Node, grpcurl smoke tests, ...). Each runs
# from the repository root with DATABASE_URL, NATS_URL and REPO_ROOT exported, no
# arguments and no stdin; a non-zero exit marks the whole run as failed.
# Set SKIP_EXTRA_SUITES=1 to run only the Rust tests.
if [ "${SKIP_EXTRA_SUITES:-0}" != 1 ] && [ -d scripts/tests.d ]; then
    for suite in scripts/tests.d/*.sh; do
        [ -e "$suite" ] || continue
        echo "==> $suite" >&2
        if ! bash "$suite" </dev/null; then
            failed+=("$suite")
        fi
    done
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED:" >&2
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
echo "all test suites passed" >&2
