#!/usr/bin/env bash
# Builds DraftPublisher's container image with podman: the image
# localhost/draft-publisher:TAG in the local podman store and the same image
# as an OCI archive, target/image/draft-publisher-TAG.oci.tar, to copy or
# push elsewhere (`skopeo copy oci-archive:FILE docker://REGISTRY/...`).
# Prints the local image's digest last (and both digests on stderr).
#
#   scripts/image.sh
#
# Environment:
#   IMAGE_PROFILE      cargo profile of the binary: release (default, what
#                      ships) or dev (what the tests already built; CI's
#                      image suite uses it to avoid a release build)
#   IMAGE_TAG          default: latest for release, the profile's name otherwise
#   SOURCE_DATE_EPOCH  the image's timestamps; default: the commit's time
#
# Reproducible: the same commit, profile and host libraries build the same
# digests and the same archive bytes (every timestamp is SOURCE_DATE_EPOCH,
# the files are staged afresh with fixed modes, the build runs without
# cache, the archive is packed in name order).
set -euo pipefail

cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/cargo.sh
. scripts/cargo.sh

bash scripts/provision.sh image
ensure_cargo
export CONTAINERS_CONF="$PWD/scripts/containers.conf"

profile="${IMAGE_PROFILE:-release}"
case "$profile" in
    release) tag="${IMAGE_TAG:-latest}" ;;
    *) tag="${IMAGE_TAG:-$profile}" ;;
esac
image="localhost/draft-publisher:$tag"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
case "$profile" in
    dev) binary="$target_dir/debug/draft-publisher" ;;
    *) binary="$target_dir/$profile/draft-publisher" ;;
esac
context="$target_dir/image"
rootfs="$context/rootfs"
archive="$context/draft-publisher-$tag.oci.tar"

log() {
    printf 'image: %s\n' "$*" >&2
}

log "cargo build --locked --profile $profile --bin draft-publisher"
cargo build --quiet --locked --profile "$profile" --bin draft-publisher

# --- the root filesystem ---------------------------------------------------
rm -rf "$rootfs"
umask 022
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/draft-publisher"
# Exactly the shared libraries the dynamic loader resolves for this binary,
# the loader itself included, each at the path the binary looks it up by.
libraries="$(ldd "$binary")" || {
    log "ldd $binary failed"
    exit 1
}
if grep -q 'not found' <<<"$libraries"; then
    log "libraries the binary needs are missing on this host:"$'\n'"$libraries"
    exit 1
fi
while read -r library; do
    install -D -m 0755 "$(readlink -f "$library")" "$rootfs$library"
done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libraries" | sort -u)
# async-nats trusts the system's CA certificates for tls:// NATS URLs.
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf '%s\n' 'root:x:0:0:root:/root:/usr/sbin/nologin' \
    'draft-publisher:x:10001:10001:DraftPublisher:/nonexistent:/usr/sbin/nologin' >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'draft-publisher:x:10001:' >"$rootfs/etc/group"
# Host names from /etc/hosts, then DNS (glibc has both built in).
printf '%s\n' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"

# --- the image ---------------------------------------------------------------
epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
revision="$(git rev-parse HEAD)"
git diff --quiet HEAD -- || revision="$revision-dirty"
version="$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)"
log "podman build $image (profile $profile, timestamp $epoch)"
replaced="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
podman build --quiet --pull=never --no-cache --layers=false --format oci --timestamp "$epoch" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    --file Containerfile --tag "$image" "$context" >/dev/null
# The image this tag named before, unless it is the same or still in use:
# without this, every commit's build would leave one behind.
if [ -n "$replaced" ] && [ "$replaced" != "$(podman image inspect --format '{{.Id}}' "$image")" ]; then
    podman rmi "$replaced" >/dev/null 2>&1 || true
fi
digest="$(podman image inspect --format '{{.Digest}}' "$image")"
log "$image $digest (in the local store, layers uncompressed)"

# podman writes the archive's tar headers with the time of saving; packed
# again in name order with SOURCE_DATE_EPOCH as every mtime, the archive too
# is the same bytes for the same commit.
saved="$context/saved"
rm -rf "$saved" "$archive" "$archive.tmp"
podman save --quiet --format oci-archive --output "$archive.tmp" "$image"
mkdir "$saved"
tar -xf "$archive.tmp" -C "$saved"
tar -cf "$archive" -C "$saved" --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner \
    --format=gnu oci-layout index.json blobs
rm -rf "$saved" "$archive.tmp"
# The manifest in the archive (gzip layers): the digest a registry shows
# once the archive is copied there.
archive_digest="$(tar -xOf "$archive" index.json | grep -o '"digest":"sha256:[0-9a-f]*"' | cut -d'"' -f4)"
log "OCI archive $archive ($(du -h "$archive" | cut -f1)): manifest $archive_digest, file sha256:$(sha256sum "$archive" | cut -d' ' -f1)"
echo "$digest"
