# shellcheck shell=bash
#
# Source this file and call `ensure_cargo`: succeeds when `cargo` can be run,
# otherwise explains how to install Rust and returns 1.

ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
        # rustup installed, but its env file was not sourced in this shell.
        PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
        export PATH
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        {
            echo "error: 'cargo' was not found. Install the Rust toolchain with rustup:"
            echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y"
            # shellcheck disable=SC2016 # printed literally on purpose
            echo '  . "$HOME/.cargo/env"'
            echo "(see https://rustup.rs), then run this script again."
        } >&2
        return 1
    fi
}
