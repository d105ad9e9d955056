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

ensure_python_env() {
    local dir="$1" venv="$1/.venv"
    if ! command -v python3 >/dev/null 2>&1; then
        _tools_log "python3 is needed (Debian: apt-get install python3 python3-venv)"
        return 1
    fi
    if [ -x "$venv/bin/python" ] && cmp -s "$dir/requirements.txt" "$venv/installed-requirements.txt"; then
        return 0
    fi
    _tools_log "installing $dir/requirements.txt into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || {
        _tools_log "python3 -m venv failed (Debian: apt-get install python3-venv)"
        return 1
    }
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --requirement "$dir/requirements.txt" >&2 || return 1
    cp "$dir/requirements.txt" "$venv/installed-requirements.txt"
}

ensure_node_modules() {
    local dir="$1" modules="$1/node_modules"
    if ! command -v npm >/dev/null 2>&1; then
        _tools_log "node and npm are needed (Node.js 20 or later)"
        return 1
    fi
    if [ -d "$modules" ] && cmp -s "$dir/package-lock.json" "$modules/.installed-package-lock.json"; then
        return 0
    fi
    _tools_log "installing $dir/package-lock.json into $modules (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2 || return 1
    cp "$dir/package-lock.json" "$modules/.installed-package-lock.json"
}
