#!/usr/bin/env bash
# Builds the emulator's container image in one command, with no registry:
# static release binaries of hsm-daemon and hsm-cli (glibc, +crt-static),
# stripped, in a FROM-scratch image (deploy/Dockerfile).
#
#   deploy/build-image.sh [--tag NAME:TAG]      (or HSM_IMAGE=NAME:TAG)
#
# The binaries are left in x86_64-unknown-linux-gnu/release/ under cargo's
# target directory (target/, or CARGO_TARGET_DIR; deploy/target-dir.sh
# prints it), apart from ordinary builds; they also run on the host (the
# CI drives the cluster with that hsm-cli).
set -euo pipefail

usage() { echo "usage: $0 [--tag NAME:TAG]  (default: \$HSM_IMAGE or hsm-emulator:latest)" >&2; }

tag="${HSM_IMAGE:-hsm-emulator:latest}"
while [ $# -gt 0 ]; do
    case "$1" in
        --tag)
            [ $# -ge 2 ] && [ -n "$2" ] || { echo "$0: --tag needs a value, e.g. --tag hsm-emulator:dev" >&2; exit 2; }
            tag="$2"
            shift 2
            ;;
        --tag=*)
            tag="${1#--tag=}"
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "$0: unknown argument: $1" >&2
            usage
            exit 2
            ;;
    esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
target=x86_64-unknown-linux-gnu
bin_dir="$(deploy/target-dir.sh)/$target/release"

echo "== static release build of hsm-daemon and hsm-cli ($target, +crt-static)"
# --target keeps these artifacts (built with RUSTFLAGS) apart from ordinary
# builds; stripping costs nothing and halves the image.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target "$target" -p hsm-daemon -p hsm-client --bin hsm-daemon --bin hsm-cli

for bin in hsm-daemon hsm-cli; do
    # A dynamically linked binary would not start in a scratch image.
    if file "$bin_dir/$bin" 2>/dev/null | grep -q "dynamically linked"; then
        echo "$0: $bin_dir/$bin is dynamically linked; it would not run FROM scratch" >&2
        exit 1
    fi
done

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/tmp" "$context/owned/data" "$context/owned/material"
cp "$bin_dir/hsm-daemon" "$bin_dir/hsm-cli" "$context/rootfs/usr/local/bin/"
chmod 0755 "$context/rootfs/usr/local/bin/"*
chmod 1777 "$context/rootfs/tmp"
chmod 0700 "$context/owned/data" "$context/owned/material"

previous="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "== docker build -t $tag (context: $(du -sh "$context" | cut -f1))"
docker build -f deploy/Dockerfile -t "$tag" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" \
    "$context"
# The image this tag named before, now untagged, would only take space.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$tag")" ] &&
    [ "$(docker image inspect -f '{{len .RepoTags}}' "$previous" 2>/dev/null)" = 0 ]; then
    docker image rm "$previous" >/dev/null || true
fi
docker image ls "$tag"
