# shellcheck shell=bash
#
# Pinned test tools and client dependencies, installed from the file that
# pins them into a git-ignored folder beside it, and installed again only
# when that file changes. Source this file, then:
#
#   ensure_python_env DIR   # DIR/requirements.txt (== pins) -> DIR/.venv
#   ensure_node_modules DIR # DIR/package.json + package-lock.json -> DIR/node_modules (npm ci)
#
# pip's and npm's own download caches make a reinstall quick.

_tools_log() {
    printf 'tools: %s\n' "$*" >&2
}

# _tools_need COMMAND HINT: fails with HINT when COMMAND is missing.
_tools_need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    _tools_log "$1 is needed ($2; scripts/provision.sh installs it)"
    return 1
}

# _tools_ensure PIN TARGET INSTALLER: unless TARGET holds the copy of PIN its
# last install left, installs afresh with `INSTALLER PIN_FOLDER TARGET`.
_tools_ensure() {
    local pin="$1" target="$2" installer="$3" stamp
    stamp="$2/.installed-$(basename -- "$1")"
    if [ -d "$target" ] && cmp -s "$pin" "$stamp"; then
        return 0
    fi
    _tools_log "installing $pin into $target"
    rm -rf "$target"
    "$installer" "$(dirname -- "$pin")" "$target" >&2 || return 1
    cp "$pin" "$stamp"
}

_tools_venv() {
    python3 -m venv "$2" || {
        _tools_log "python3 -m venv failed (Debian: python3-venv; scripts/provision.sh installs it)"
        return 1
    }
    "$2/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --requirement "$1/requirements.txt"
}

_tools_npm_ci() {
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
}

ensure_python_env() {
    _tools_need python3 "Python 3 with venv" &&
        _tools_ensure "$1/requirements.txt" "$1/.venv" _tools_venv
}

ensure_node_modules() {
    _tools_need npm "Node.js 18 or later with npm" &&
        _tools_ensure "$1/package-lock.json" "$1/node_modules" _tools_npm_ci
}
