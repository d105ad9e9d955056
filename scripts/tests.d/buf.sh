#!/usr/bin/env bash
# The proto as a product: `buf lint` (STANDARD + COMMENTS rules, proto/buf.yaml)
# and `buf breaking` against the proto of the previous commit, with the buf
# CLI pinned in scripts/tools/buf/package-lock.json.
#
#   bash scripts/tests.d/buf.sh
#
# BUF_BREAKING_AGAINST (default HEAD~1) names the git revision to compare
# with. Breaking is skipped, with a message, only when that revision does not
# exist (first commit, shallow clone) or had no proto.
set -euo pipefail

cd -- "${REPO_ROOT:-$(dirname -- "${BASH_SOURCE[0]}")/../..}"
# shellcheck source=scripts/lib/tools.sh
. scripts/lib/tools.sh

ensure_node_modules scripts/tools/buf
buf="$PWD/scripts/tools/buf/node_modules/.bin/buf"
proto_file=draftpublisher/v1/draft_publisher.proto
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "buf $("$buf" --version)"

echo "--- buf lint"
(cd proto && "$buf" lint)
echo "ok: buf lint"

# The rules are really on: the proto with one field comment removed must fail
# COMMENT_FIELD, and a renamed field must be a breaking change.
cp -R proto "$work/uncommented"
sed -i '/^  \/\/ The draft.s id (UUID, lowercase)\.$/d' "$work/uncommented/$proto_file"
if (cd "$work/uncommented" && "$buf" lint --error-format json >"$work/lint.out" 2>&1); then
    echo "FAIL: buf lint accepted a field without a comment" >&2
    exit 1
fi
grep -q '"type":"COMMENT_FIELD"' "$work/lint.out" || {
    echo "FAIL: expected a COMMENT_FIELD finding, got:" >&2
    cat "$work/lint.out" >&2
    exit 1
}
cp -R proto "$work/renamed"
sed -i 's/^  string title = 3;$/  string headline = 3;/' "$work/renamed/$proto_file"
if "$buf" breaking "$work/renamed" --against proto --error-format json >"$work/breaking.out" 2>&1; then
    echo "FAIL: buf breaking accepted a renamed field" >&2
    exit 1
fi
grep -q '"type":"FIELD_SAME_NAME"' "$work/breaking.out" || {
    echo "FAIL: expected a FIELD_SAME_NAME finding, got:" >&2
    cat "$work/breaking.out" >&2
    exit 1
}
echo "ok: the lint and breaking rules catch a missing comment and a renamed field"

echo "--- buf breaking"
against="${BUF_BREAKING_AGAINST:-HEAD~1}"
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "SKIPPED: buf breaking: not a git checkout, no previous proto to compare with"
elif ! git rev-parse --verify --quiet "$against^{commit}" >/dev/null; then
    echo "SKIPPED: buf breaking: no revision $against (first commit or shallow clone)"
elif ! git cat-file -e "$against:proto/$proto_file" 2>/dev/null; then
    echo "SKIPPED: buf breaking: proto/$proto_file did not exist at $against"
else
    # The previous proto is exported with git itself, which works the same in
    # clones, worktrees and CI checkouts.
    mkdir "$work/against"
    git archive "$against" proto | tar -x -C "$work/against"
    "$buf" breaking proto --against "$work/against/proto"
    echo "ok: buf breaking against $against ($(git rev-parse --short "$against"))"
fi
